using FedAvg.Core.Runtime;
using FedAvg.Cli;
using FedAvg.Tests.Shared;
using static FedAvg.Cli.Tests.CliTests;

namespace FedAvg.Cli.Tests;

/// <summary>
/// Mistakes a user makes, found by trying the commands as one would: each exits with its code and a message that
/// names the setting and the reason, before any work starts, and never with a stack trace.
/// </summary>
public class BadInputTests
{
    [Theory]
    [InlineData(new[] { "server", "--port", "abc" }, "Cannot parse argument 'abc' for option '--port' as a whole number.")]
    [InlineData(new[] { "simulate", "--rounds", "1", "--rounds", "2" }, "--rounds takes one value and was given 2 (is it there twice?); give it once.")]
    [InlineData(new[] { "simulate", "--trainers", "1000000" }, "(--trainers) is 1000000 and fedavg.threads-per-trainer (--threads-per-trainer) is 1: that asks for 1,000,000 training threads")]
    [InlineData(new[] { "simulate", "--threads-per-trainer", "100000" }, "(--threads-per-trainer) is 100000: that asks for")]
    [InlineData(new[] { "bench", "train", "--trainers", "100000" }, "asks for 100,000 training threads")]
    [InlineData(new[] { "node", "--join", "127.0.0.1:1", "--clients", "0-1", "--trainers", "4", "--threads-per-trainer", "100000" }, "asks for 400,000 training threads")]
    // 192.0.2.1 is TEST-NET-1 (RFC 5737), assigned to no machine: a bind address that is not this one's, with any port
    [InlineData(new[] { "server", "--rounds", "1", "--port", "0", "--bind-hostname", "192.0.2.1", "--insecure" }, "--bind-hostname '192.0.2.1': cannot listen on 192.0.2.1:0")]
    [InlineData(new[] { "node", "--join", "127.0.0.1:1", "--clients", "0-1", "--bind-hostname", "192.0.2.1", "--insecure" }, "--bind-hostname '192.0.2.1': cannot listen on 192.0.2.1:0")]
    [InlineData(new[] { "server", "--rounds", "1", "--port", "0", "--bind-hostname", "999.1.1.1", "--insecure" }, "--bind-hostname '999.1.1.1'")]
    // without --bind-hostname a node listens on its --hostname, and a public address behind a NAT is not this machine's
    [InlineData(new[] { "server", "--rounds", "1", "--port", "0", "--hostname", "192.0.2.1", "--insecure" }, "--hostname '192.0.2.1': cannot listen on 192.0.2.1:0")]
    [InlineData(new[] { "node", "--join", "127.0.0.1:1", "--clients", "0-1", "--hostname", "192.0.2.1", "--insecure" }, "keep it as --hostname and listen with --bind-hostname on this machine's own address")]
    [InlineData(new[] { "simulate", "--strategy", "fedsgd" }, "fedavg.strategy.name (--strategy): unknown strategy 'fedsgd'; the strategies are fedavg, fedprox")]
    public void Usage_errors_exit_2_and_name_the_problem(string[] args, string named)
    {
        var (code, error) = Fedavg([.. args, "--data-dir", TestData.DataDir]);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains(named, error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void A_transport_heartbeat_to_measure_that_is_not_a_positive_duration_is_named()
    {
        var (code, error) = Fedavg(["bench", "first-requests", "--transport-heartbeats", "1s,soon"]);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains("--transport-heartbeats: 'soon' is not a positive duration", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Theory]
    [InlineData("simulate", "fedavg.server { max-update-nrom = 2 }", "fedavg.server.max-update-nrom is not a setting. Valid settings in fedavg.server: max-update-norm.")]
    [InlineData("simulate", "fedavg.server { bogus = 1 }", "fedavg.server.bogus is not a setting.")]
    [InlineData("server", "fedavg.server.max-update-nrom = 2", "fedavg.server.max-update-nrom is not a setting.")]
    [InlineData("node", "fedavg { roundz = 3 }", "fedavg.roundz is not a setting. Valid settings: ")]
    [InlineData("node", "fedavg.server { bogus = 1 }", "fedavg.server.bogus is not a setting.")]
    public void A_misspelt_key_in_a_section_of_settings_is_refused_by_every_command(string command, string hocon, string message)
    {
        string config = Path.Combine(TestData.TempDir(), "misspelt.conf"), dir = Path.Combine(TestData.TempDir(), "run");
        File.WriteAllText(config, hocon);
        string[] args = command == "node"
            ? ["node", "--join", "127.0.0.1:1", "--clients", "0-1", "--join-timeout", "1s"]
            : [command, "--clients", "2", "--partition", "iid:50", "--rounds", "1", "--out", dir, .. command == "server" ? new[] { "--port", "0" } : []];
        var (code, error) = Fedavg([.. args, "--config", config, "--data-dir", TestData.DataDir]);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains(message, error);
    }

    [Theory]
    [InlineData("fedavg.faults = [ { behaviour = crash, clients = [-1] } ]", "fedavg.faults[0].clients: client -1 does not exist; client ids start at 0.")]
    [InlineData("fedavg.faults = [ { behaviour = \"delay:xyz\" } ]", "delay needs a duration such as 30s or 500ms, got 'xyz'")]
    [InlineData("fedavg.rounds = 2\ninclude \"nonexistent.conf\"", "line 2: include is not supported")]
    [InlineData("fedavg.local-epochs = abc", "fedavg.local-epochs (--local-epochs): 'abc' is not a valid value (not a whole number).")]
    [InlineData("fedavg.clients = 99999999999", "fedavg.clients (--clients): '99999999999' is not a valid value (a whole number from")]
    [InlineData("fedavg.lr = fast", "fedavg.lr (--lr): 'fast' is not a valid value (not a number).")]
    public void A_bad_config_gets_a_message_that_gives_the_real_reason(string hocon, string message)
    {
        string config = Path.Combine(TestData.TempDir(), "bad.conf"), dir = Path.Combine(TestData.TempDir(), "run");
        File.WriteAllText(config, hocon);
        var (code, error) = Fedavg("simulate", "--clients", "4", "--partition", "iid:50", "--rounds", "1", "--out", dir, "--config", config, "--data-dir", TestData.DataDir);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains(message, error);
        Assert.DoesNotContain("2147483647", error);
        Assert.DoesNotContain("was not in a correct format", error);
        Assert.DoesNotContain("Object reference", error);
    }

    /// <summary>`simulate --config FILE` with one bad `fedavg.faults` entry: exit 2, the message, and no run directory.</summary>
    static void RefusedBeforeAnyWork(string hocon, string message)
    {
        string config = Path.Combine(TestData.TempDir(), "faults.conf"), dir = Path.Combine(TestData.TempDir(), "run");
        File.WriteAllText(config, hocon);
        // a short deadline and one attempt: a fault that is not refused makes the run end soon (exit 4), not in 10 minutes
        var (code, error) = Fedavg("simulate", "--clients", "4", "--partition", "iid:50", "--rounds", "1", "--local-epochs", "1",
            "--round-timeout", "5s", "--round-attempts", "1", "--out", dir, "--config", config, "--data-dir", TestData.DataDir);
        Assert.True(code == ExitCodes.UsageError, $"exit {code}: {error}");
        Assert.Contains(message, error);
        Assert.DoesNotContain("   at ", error);
        Assert.DoesNotContain("was not in a correct format", error);
        Assert.DoesNotContain("cannot be null", error);
        Assert.False(Directory.Exists(dir), "a refused run left its directory behind");
    }

    [Theory]
    [InlineData("fedavg.faults = [ { behaviour = drop, clients = [] } ]", "fedavg.faults[0].clients is empty; leave it out to target every client.")]
    [InlineData("fedavg.faults = [ { behaviour = drop, clients = [ ] } ]", "fedavg.faults[0].clients is empty; leave it out to target every client.")]
    [InlineData("fedavg.faults = [ { behaviour = drop, clients { a = 1 } } ]", "fedavg.faults[0].clients must be a list of client ids such as [1, 3], not an object.")]
    [InlineData("fedavg.faults = [ { behaviour = drop, clients = [1.5] } ]", "fedavg.faults[0].clients must be a list of client ids (whole numbers from 0) such as [1, 3], got '[1.5]'.")]
    [InlineData("fedavg.faults = [ { behaviour = drop, from-round = two } ]", "fedavg.faults[0].from-round must be a round number (a whole number from 1), got 'two'.")]
    [InlineData("fedavg.faults = [ { behaviour = drop, to-round = 1.5 } ]", "fedavg.faults[0].to-round must be a round number (a whole number from 1), got '1.5'.")]
    [InlineData("fedavg.faults = [ { behaviour = drop, probability = half } ]", "fedavg.faults[0].probability must be a number in [0, 1], got 'half'.")]
    [InlineData("fedavg.faults = [ { behaviour = drop, fraction = most } ]", "fedavg.faults[0].fraction must be a number in (0, 1], got 'most'.")]
    public void A_fault_entry_whose_value_has_the_wrong_form_says_what_the_key_takes(string hocon, string message) =>
        RefusedBeforeAnyWork(hocon, message);

    [Theory]
    [InlineData("simulate", "fedavg.rounds = abc", "--rounds", "fedavg.rounds (--rounds): 'abc' is not a valid value (not a whole number).")]
    [InlineData("server", "fedavg.clients = -5", "--clients", "fedavg.clients (--clients) must be at least 1, got -5.")]
    [InlineData("server", "fedavg.cluster.wait-for-clients = soon", "--wait-for-clients", "fedavg.cluster.wait-for-clients: 'soon' is not a valid value")]
    [InlineData("node", "fedavg.cluster.join-timeout = abc", "--join-timeout", "fedavg.cluster.join-timeout: 'abc' is not a valid value")]
    public void A_bad_value_in_a_config_file_is_refused_naming_the_file_even_when_a_flag_overrides_it(string command, string hocon, string flag, string reason)
    {
        // it used to be taken in silence: the flag's value ran, and the file misled the next run that used it alone
        string config = Path.Combine(TestData.TempDir(), "overridden.conf"), dir = Path.Combine(TestData.TempDir(), "run");
        File.WriteAllText(config, hocon);
        string value = flag switch { "--rounds" => "1", "--clients" => "2", _ => "1s" };
        string[] args = command == "node"
            ? ["node", "--join", "127.0.0.1:1", "--clients", "0-1"]
            : [command, "--partition", "iid:50", "--rounds", "1", "--out", dir, .. command == "server" ? new[] { "--port", "0" } : []];
        if (flag != "--rounds" || command != "simulate") args = [.. args, flag, value];
        var (code, error) = Fedavg([.. args, "--config", config, "--data-dir", TestData.DataDir]);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains($"--config {config}: {reason}", error);
        Assert.DoesNotContain("   at ", error);
        Assert.False(Directory.Exists(dir), $"{command} left {dir} behind");
    }

    [Theory]
    [InlineData("fedavg.faults = [ { behaviour = drop, behaviour = crash } ]", "line 1: fedavg.faults[0].behaviour is given twice in one entry")]
    [InlineData("fedavg {\n  faults = [\n    { behaviour = drop }\n    { behaviour = nan\n      clients = [1], clients = [2] }\n  ]\n}", "line 5: fedavg.faults[1].clients is given twice in one entry")]
    [InlineData("fedavg.faults = [ { behaviour = drop }, { \"from-round\" = 2, behaviour = nan, from-round = 3 } ]", "fedavg.faults[1].from-round is given twice in one entry")]
    public void A_key_given_twice_in_one_fault_entry_is_refused_since_hocon_would_keep_only_the_last(string hocon, string message) =>
        RefusedBeforeAnyWork(hocon, message);

    [Theory]
    [InlineData("akka.actor.provider = bogus", "'akka.actor.provider' is not a valid type name : 'bogus'")]
    [InlineData("akka.loglevel = LOUD", "Unknown LogLevel: \"LOUD\"")]
    public void An_akka_setting_that_akka_refuses_is_a_usage_error_with_its_reason(string hocon, string reason)
    {
        string config = Path.Combine(TestData.TempDir(), "akka.conf"), dir = Path.Combine(TestData.TempDir(), "run");
        File.WriteAllText(config, hocon);
        foreach (var command in new[] { ["simulate"], new[] { "server", "--port", "0" } })
        {
            var (code, error) = Fedavg([.. command, "--clients", "2", "--partition", "iid:50", "--rounds", "1",
                "--out", dir, "--config", config, "--data-dir", TestData.DataDir]);
            Assert.Equal(ExitCodes.UsageError, code);
            Assert.Contains($"an akka setting (hocon/*.conf or --config) is not valid: {reason}", error);
            Assert.DoesNotContain("   at ", error);
            Assert.False(Directory.Exists(dir), $"{command[0]} left {dir} behind");
        }
    }

    [Theory]
    [InlineData("node", "--join-timeout", "banana", "--join-timeout: 'banana' is not a valid value (not a duration such as 30s or 10m).")]
    [InlineData("node", "--join-timeout", "0s", "--join-timeout must be a positive duration such as 30s or 10m, got '0s'.")]
    [InlineData("server", "--wait-for-clients", "soon", "--wait-for-clients: 'soon' is not a valid value (not a duration such as 30s or 10m).")]
    [InlineData("server", "--federation", " ", "--federation must not be empty.")]
    public void A_bad_cluster_flag_is_refused_naming_the_flag(string command, string flag, string value, string message)
    {
        // it named the HOCON key the flag sets (fedavg.cluster.join-timeout), with .NET's "input string was not in a correct format"
        string dir = Path.Combine(TestData.TempDir(), "run");
        string[] args = command == "node"
            ? ["node", "--join", "127.0.0.1:1", "--clients", "0-1"]
            : ["server", "--partition", "iid:50", "--rounds", "1", "--out", dir, "--port", "0"];
        var (code, error) = Fedavg([.. args, flag, value, "--data-dir", TestData.DataDir]);
        Assert.Equal((ExitCodes.UsageError, $"fedavg: {message}"), (code, error.Trim()));
        Assert.False(Directory.Exists(dir), $"{command} left {dir} behind");
    }

    [Fact]
    public void A_nodes_own_images_of_another_size_are_a_data_error_at_start_naming_the_file_and_both_sizes()
    {
        // before, 32×32 images were taken, the node joined, and every round failed inside libtorch with a shape error
        string dir = TestData.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "train-images-idx3-ubyte"), Idx(0x0803, [10, 32, 32]));
        File.WriteAllBytes(Path.Combine(dir, "train-labels-idx1-ubyte"), Idx(0x0801, [10]));
        var (code, error) = Fedavg("node", "--join", "127.0.0.1:1", "--own-data", dir);
        Assert.Equal(ExitCodes.DataError, code);
        Assert.Contains($"{Path.Combine(dir, "train-images-idx3-ubyte")} holds 32×32 images; the models take 28×28.", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public async Task A_run_that_fails_before_any_round_completed_does_not_point_to_a_checkpoint_it_lacks()
    {
        string dir = Path.Combine(TestData.TempDir(), "run");
        // a deadline far shorter than one local training: round 1 gets no update, and the run fails. A timer fires on
        // Akka's next tick (50 ms, hocon/simulation.conf), so the training must take longer than that: 30,000 samples
        // (0.9 s here) where 50 samples had finished first in 3 of 6 runs
        using var run = new FedavgProcess("simulate", "simulate", "--clients", "2", "--partition", "iid:600", "--local-epochs", "50",
            "--rounds", "2", "--round-timeout", "1ms", "--round-attempts", "1", "--out", dir);
        Assert.Equal(ExitCodes.RunFailed, await run.WaitForExit(TimeSpan.FromMinutes(2)));
        Assert.False(File.Exists(Path.Combine(dir, "checkpoint.bin")));
        string output = System.Text.RegularExpressions.Regex.Replace(run.Output, @"\s+", " "); // the console wraps at 80 columns
        Assert.Contains($"No round completed, so {dir} holds no checkpoint to resume from", output);
        Assert.DoesNotContain("continue with --resume", output);
    }

    [Fact]
    public void A_resumed_run_may_go_on_longer_but_not_become_another_experiment()
    {
        string dir = Path.Combine(TestData.TempDir(), "run");
        var (code, error) = Fedavg("simulate", "--clients", "4", "--partition", "iid:50", "--local-epochs", "1", "--rounds", "1",
            "--trainers", "1", "--out", dir, "--data-dir", TestData.DataDir);
        Assert.True(code == ExitCodes.Success, error);
        // another K (hence another partition) and another learning rate: refused, each named with the run's own value
        (code, error) = Fedavg("simulate", "--resume", dir, "--rounds", "2", "--clients", "5", "--lr", "0.5", "--data-dir", TestData.DataDir);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains("fedavg.clients (--clients) 5 (the run has 4)", error);
        Assert.Contains("fedavg.lr (--lr) 0.5 (the run has 0.01)", error);
        Assert.Equal(1, Checkpoint.Load(Path.Combine(dir, Checkpoint.FileName)).Round); // nothing ran
        Assert.Contains("--force (start over, replacing it) contradicts it",
            Fedavg("simulate", "--resume", dir, "--rounds", "2", "--force", "--data-dir", TestData.DataDir).Error);
        // more rounds on other trainers, as the run's own: taken
        (code, error) = Fedavg("simulate", "--resume", dir, "--rounds", "2", "--trainers", "2", "--data-dir", TestData.DataDir);
        Assert.True(code == ExitCodes.Success, error);
        Assert.Equal(2, Checkpoint.Load(Path.Combine(dir, Checkpoint.FileName)).Round);
    }

    /// <summary>An IDX file of zero bytes with the given magic and dimensions.</summary>
    static byte[] Idx(int magic, int[] dimensions)
    {
        int items = dimensions.Aggregate(1, (a, b) => a * b);
        var bytes = new byte[4 + 4 * dimensions.Length + items];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int i = 0; i < dimensions.Length; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dimensions[i]);
        return bytes;
    }
}
