using System.Diagnostics;
using System.Text.RegularExpressions;
using FedAvg.Tests.Shared;

namespace FedAvg.Actors.Testing.Tests;

/// <summary>
/// The kit as a user meets it: a test project outside this repository, made of the README's project file and the
/// README's example test (both taken from README.md as they are), built and run with `dotnet test`. Inside the
/// repository Directory.Build.targets and the tests' own module initializer hide what such a project lacks.
/// </summary>
public class OutsideProjectTests
{
    static string ReadmeBlock(string language)
    {
        string readme = File.ReadAllText(Path.Combine(TestData.RepoRoot, "README.md"));
        string section = readme[readme.IndexOf("## Test your federation's faults", StringComparison.Ordinal)..];
        var match = Regex.Match(section, $"```{language}\n(.*?)```", RegexOptions.Singleline);
        Assert.True(match.Success, $"README.md's fault section has no {language} block");
        return match.Groups[1].Value;
    }

    [Fact]
    public async Task The_readme_project_and_example_build_and_pass_outside_the_repository()
    {
        string dir = TestData.TempDir(); // under the system's temp directory, outside the repository
        Assert.False(dir.StartsWith(TestData.RepoRoot, StringComparison.Ordinal));
        File.WriteAllText(Path.Combine(dir, "UserFaultTests.csproj"), ReadmeBlock("xml").Replace("FEDAVG", TestData.RepoRoot));
        File.WriteAllText(Path.Combine(dir, "MyFaultTests.cs"), ReadmeBlock("csharp"));

        var start = new ProcessStartInfo("dotnet", ["test", "-c", "Release", "--disable-build-servers", "-nodeReuse:false"])
        {
            WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        start.Environment["FEDAVG_DATA"] = TestData.DataDir;
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        using var process = Process.Start(start)!;
        string output;
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(10));
            try
            {
                await process.WaitForExitAsync(limit.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail("dotnet test of the outside project did not finish in 10 minutes");
            }
            output = await stdout + await stderr;
        }
        finally
        {
            // whatever ended the wait (the limit, a failure reading its output, the test run cancelled): dotnet test and its
            // test host, with the libtorch they loaded, do not outlive the test
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        try
        {
            Assert.True(process.ExitCode == 0, $"dotnet test exited {process.ExitCode}:\n{Tail(output)}");
            Assert.Contains("Passed:     1", output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true); // its output holds a copy of libtorch (about 1.5 GB)
        }
    }

    static string Tail(string output)
    {
        var lines = output.Split('\n').Where(l => !l.StartsWith("Copy ", StringComparison.Ordinal)).ToArray();
        return string.Join('\n', lines.TakeLast(40));
    }
}
