using FedAvg.Cli;
using FedAvg.Tests.Shared;

namespace FedAvg.Cli.Tests;

/// <summary>Ctrl-C and SIGTERM on real `fedavg` processes.</summary>
public class SignalTests
{
    [Fact]
    public async Task A_second_signal_stops_at_once_a_command_that_does_not_stop_at_the_first()
    {
        // centralized training does not watch the cancellation the first signal sets: before, it ran on through
        // every signal, and only SIGKILL ended it
        using var run = new FedavgProcess("centralized", "centralized", "--epochs", "1000", "--out", Path.Combine(TestData.TempDir(), "c.csv"));
        await run.WaitForLine("^Centralized ", TimeSpan.FromMinutes(2));
        run.Terminate();
        await run.WaitForLine(@"stopping \(Ctrl-C again to stop at once\)", TimeSpan.FromSeconds(30));
        run.Terminate();
        Assert.Equal(ExitCodes.Interrupted, await run.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.Contains("fedavg: interrupted again: stopping now.", run.Output);
    }
}
