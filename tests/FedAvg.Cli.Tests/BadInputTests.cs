using FedAvg.Cli;
using FedAvg.Tests.Shared;

namespace FedAvg.Cli.Tests;

/// <summary>
/// Mistakes a user makes, found by trying the commands as one would: each exits with its code and a message that
/// names the setting and the reason, before any work starts, and never with a stack trace.
/// </summary>
public class BadInputTests
{
    static (int Code, string Error) Fedavg(params string[] args)
    {
        var error = new StringWriter();
        int code = FedAvgCommand.Run(args, TextWriter.Null, error);
        return (code, error.ToString());
    }

    [Theory]
    [InlineData(new[] { "simulate", "--trainers", "1000000" }, "(--trainers) is 1000000 and fedavg.threads-per-trainer (--threads-per-trainer) is 1: that asks for 1,000,000 training threads")]
    [InlineData(new[] { "simulate", "--threads-per-trainer", "100000" }, "(--threads-per-trainer) is 100000: that asks for")]
    [InlineData(new[] { "bench", "train", "--trainers", "100000" }, "asks for 100,000 training threads")]
    [InlineData(new[] { "node", "--join", "127.0.0.1:1", "--clients", "0-1", "--trainers", "4", "--threads-per-trainer", "100000" }, "asks for 400,000 training threads")]
    public void Usage_errors_exit_2_and_name_the_problem(string[] args, string named)
    {
        var (code, error) = Fedavg([.. args, "--data-dir", TestData.DataDir]);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains(named, error);
        Assert.DoesNotContain("   at ", error);
    }
}
