using System.CommandLine;
using FedAvg.Actors.Hosting;
using FedAvg.Cli;
using FedAvg.Core.Models;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;
using FedAvg.Tests.Shared;
using TorchSharp;

namespace FedAvg.Cli.Tests;

/// <summary>The `fedavg` command as a user runs it: real arguments, real files, real exit codes.</summary>
public class CliTests
{
    /// <summary>`fedavg ARGS` in this process (as a user types it), its exit code and what it wrote to stderr.</summary>
    internal static (int Code, string Error) Fedavg(params string[] args)
    {
        var error = new StringWriter();
        int code = FedAvgCommand.Run(args, TextWriter.Null, error);
        return (code, error.ToString());
    }

    static string[] Small(string outDir, params string[] extra) =>
    [
        "simulate", "--data-dir", TestData.DataDir, "--out", outDir, "--clients", "20", "--fraction", "0.1",
        "--partition", "iid", "--local-epochs", "1", "--lr", "0.05", "--rounds", "2", "--trainers", "1", .. extra,
    ];

    [Theory]
    [InlineData(new[] { "simulate", "--bogus" }, "--bogus")]
    [InlineData(new[] { "simulate", "--model", "resnet50" }, "seed001-2nn")]
    [InlineData(new[] { "simulate", "--fraction", "0" }, "fraction")]
    [InlineData(new[] { "simulate", "--fraction", "1.01" }, "fraction")]
    [InlineData(new[] { "simulate", "--clients", "10", "--min-clients", "11" }, "min-clients")]
    [InlineData(new[] { "simulate", "--round-timeout", "-5s" }, "round-timeout")]
    [InlineData(new[] { "simulate", "--round-timeout", "0s" }, "fedavg.round-timeout (--round-timeout) must be positive, such as 90s or 10m, got 0ms.")]
    [InlineData(new[] { "simulate", "--partition", "dirichlet:0" }, "alpha")]
    [InlineData(new[] { "simulate", "--dataset", "cifar10" }, "fashion-mnist")]
    [InlineData(new[] { "simulate", "--clients", "abc" }, "abc")]
    [InlineData(new[] { "centralized", "--batch", "0" }, "batch")]
    [InlineData(new[] { "centralized", "--lr", "-0.1" }, "lr")]
    [InlineData(new[] { "centralized", "--model", "lenet" }, "mcmahan-cnn")]
    [InlineData(new[] { "frobnicate" }, "frobnicate")]
    [InlineData(new[] { "simulate", "--resume", "no-such-run-directory" }, "--resume no-such-run-directory: no such directory")]
    public void Usage_errors_exit_2_and_name_the_problem(string[] args, string named)
    {
        var (code, error) = Fedavg([.. args, "--data-dir", TestData.DataDir]);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains(named, error);
    }

    [Theory]
    [InlineData("faults = [ { behaviour = drop, probability = -0.1 } ]", "fedavg.faults[0].probability must be in [0, 1]")]
    [InlineData("faults = [ { behaviour = explode } ]", "valid: crash, stop, delay:DURATION, stall, drop, twice, stale, nan, inf, sign-flip, scale:K, noise:SIGMA, random, wrong-length, samples:N")]
    [InlineData("faults = [ { behaviour = nan, clients = [20] } ]", "fedavg.faults[0].clients: client 20 does not exist; this run has 20 clients")]
    public void Bad_faults_exit_2_before_any_work_naming_the_setting(string faults, string named)
    {
        string dir = Path.Combine(TestData.TempDir(), "run");
        string conf = Path.Combine(TestData.TempDir(), "faults.conf");
        File.WriteAllText(conf, $"fedavg {{ {faults} }}");
        var (code, error) = Fedavg(Small(dir, "--config", conf));
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains(named, error);
        Assert.DoesNotContain("   at ", error); // no stack trace for the user's mistake
        Assert.False(Directory.Exists(dir)); // nothing was started
    }

    [Fact]
    public void Faults_from_the_config_fire_and_rounds_csv_and_jsonl_record_them_and_the_rejections()
    {
        string dir = Path.Combine(TestData.TempDir(), "run");
        string conf = Path.Combine(TestData.TempDir(), "faults.conf");
        File.WriteAllText(conf, "fedavg { faults = [ { behaviour = nan, clients = [3] }, { behaviour = twice, clients = [5] } ] }");
        var (code, error) = Fedavg("simulate", "--data-dir", TestData.DataDir, "--out", dir, "--config", conf, "--clients", "6",
            "--fraction", "1.0", "--partition", "iid:200", "--local-epochs", "1", "--lr", "0.05", "--rounds", "2", "--trainers", "1");
        Assert.True(code == ExitCodes.Success, error);

        FedAvg.Actors.Testing.CompletedRounds.VerifyRunDirectory(dir, 2); // nothing completed was lost
        var csv = File.ReadAllLines(Path.Combine(dir, RunOutputs.RoundsCsv));
        Assert.EndsWith(",faults,rejected", csv[0]);
        // the second copy is refused as a duplicate, or as late when the first one closed the round
        Assert.All(csv[1..], line => Assert.Matches(
            @",client-003: nan; client-005: twice,client-003: non-finite weights \(NaN or infinity\); client-005: (duplicate|late \(round \d is closed\))$", line));
        Assert.StartsWith("1,6,5,1,1,", csv[1]);
        var first = System.Text.Json.JsonDocument.Parse(File.ReadLines(Path.Combine(dir, RunOutputs.RoundsJsonl)).First()).RootElement;
        Assert.Equal("client-003", first.GetProperty("Faults")[0].GetProperty("ClientId").GetString());
        Assert.Equal("client-005", first.GetProperty("Rejected")[1].GetProperty("ClientId").GetString());
        Assert.Contains("behaviour = \"nan\", clients = [3]", File.ReadAllText(Path.Combine(dir, RunOutputs.ConfigFile)));
    }

    [Fact]
    public void Centralized_writes_its_per_epoch_table_as_csv()
    {
        string csv = Path.Combine(TestData.TempDir(), "centralized.csv");
        var (code, error) = Fedavg("centralized", "--data-dir", TestData.DataDir, "--epochs", "1", "--batch", "64", "--lr", "0.05", "--out", csv);
        Assert.True(code == ExitCodes.Success, error);
        var lines = File.ReadAllLines(csv);
        Assert.Equal("epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds", lines[0]);
        Assert.Equal(2, lines.Length);
        Assert.True(double.Parse(lines[1].Split(',')[4], System.Globalization.CultureInfo.InvariantCulture) > 0.9, lines[1]);
    }

    [Fact]
    public void An_invalid_hocon_file_exits_2_naming_the_file_and_line()
    {
        string file = Path.Combine(TestData.TempDir(), "bad.conf");
        File.WriteAllText(file, "fedavg {\n  lr = \n}\n");
        var (code, error) = Fedavg("simulate", "--config", file, "--out", Path.Combine(TestData.TempDir(), "run"));
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains(file, error);
        Assert.Contains("line 2", error);
    }

    [Fact]
    public void Missing_data_exits_3_and_says_how_to_install()
    {
        var (code, error) = Fedavg("centralized", "--data-dir", Path.Combine(TestData.TempDir(), "empty"), "--epochs", "1");
        Assert.Equal(ExitCodes.DataError, code);
        Assert.Contains("fedavg data install", error);
    }

    [Fact]
    public void An_existing_run_directory_is_never_overwritten_silently()
    {
        string dir = TestData.TempDir();
        string precious = Path.Combine(dir, "rounds.csv");
        File.WriteAllText(precious, "results of an earlier run");
        var (code, error) = Fedavg(Small(dir));
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains("--force", error);
        Assert.Equal("results of an earlier run", File.ReadAllText(precious));
    }

    [Fact]
    public void Simulate_writes_every_output_and_resume_continues_the_same_run()
    {
        string dir = Path.Combine(TestData.TempDir(), "run");
        var (code, error) = Fedavg(Small(dir));
        Assert.True(code == ExitCodes.Success, error);

        var csv = File.ReadAllLines(Path.Combine(dir, RunOutputs.RoundsCsv));
        Assert.Equal(3, csv.Length); // header + 2 rounds
        Assert.StartsWith("round,sampled,succeeded,failed", csv[0]);
        Assert.StartsWith("2,2,2,0,1,", csv[2]);
        Assert.Equal(2, File.ReadAllLines(Path.Combine(dir, RunOutputs.RoundsJsonl)).Length);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(Path.Combine(dir, RunOutputs.PlotFile))[..4]);
        Assert.Contains("clients = 20", File.ReadAllText(Path.Combine(dir, RunOutputs.ConfigFile)));
        Assert.Equal(2, Checkpoint.Load(Path.Combine(dir, Checkpoint.FileName)).Round);

        // the saved model is TorchSharp's format and holds the final global weights
        using var model = ModelZoo.Create("seed001-2nn");
        model.load(Path.Combine(dir, RunOutputs.ModelFile));
        var accuracy = Evaluator.Evaluate(model, TestData.MnistTest).Accuracy;
        double reported = double.Parse(csv[2].Split(',')[6], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(reported, accuracy, 10);

        // resuming a finished run without more rounds is refused; with --rounds 3 it runs round 3 only
        Assert.Equal(ExitCodes.UsageError, Fedavg("simulate", "--resume", dir, "--data-dir", TestData.DataDir).Code);
        (code, error) = Fedavg("simulate", "--resume", dir, "--rounds", "3", "--data-dir", TestData.DataDir);
        Assert.True(code == ExitCodes.Success, error);
        csv = File.ReadAllLines(Path.Combine(dir, RunOutputs.RoundsCsv));
        Assert.Equal(4, csv.Length);
        Assert.StartsWith("3,", csv[3]);
        Assert.Equal(3, Checkpoint.Load(Path.Combine(dir, Checkpoint.FileName)).Round);

        // a checkpoint of another model is refused before any training
        (code, error) = Fedavg("simulate", "--resume", dir, "--rounds", "4", "--model", "seed000-cnn", "--data-dir", TestData.DataDir);
        Assert.Equal(ExitCodes.DataError, code);
        Assert.Contains("seed000-cnn", error);
    }

    [Fact]
    public void A_run_that_cannot_get_enough_updates_exits_4_and_keeps_its_checkpoint_and_rounds()
    {
        string dir = Path.Combine(TestData.TempDir(), "run");
        // round 1 completes; from round 2 every client sends NaN, refused on arrival: round 2 has none of the 2 it needs.
        // (A run that fails in round 1 has no checkpoint to keep: that case is BadInputTests'.)
        string conf = Path.Combine(TestData.TempDir(), "faults.conf");
        File.WriteAllText(conf, "fedavg.faults = [ { behaviour = nan, from-round = 2 } ]");
        var (code, error) = Fedavg(Small(dir, "--config", conf, "--round-attempts", "1", "--min-clients", "2"));
        Assert.True(code == ExitCodes.RunFailed, $"exit {code}: {error}");
        Assert.True(File.Exists(Path.Combine(dir, RunOutputs.SummaryFile)));
        Assert.Contains("\"completed\": false", File.ReadAllText(Path.Combine(dir, RunOutputs.SummaryFile)));
        // what the run completed is kept: round 1's checkpoint, and its record in rounds.csv and rounds.jsonl
        Assert.Equal(1, Checkpoint.Load(Path.Combine(dir, Checkpoint.FileName)).Round);
        var csv = File.ReadAllLines(Path.Combine(dir, RunOutputs.RoundsCsv));
        Assert.Equal(2, csv.Length); // header + round 1
        Assert.StartsWith("1,2,2,0,1,", csv[1]);
        Assert.Single(File.ReadAllLines(Path.Combine(dir, RunOutputs.RoundsJsonl)));
    }

    [Fact]
    public void Out_naming_an_existing_file_is_a_usage_error_that_leaves_the_file_alone()
    {
        string file = Path.Combine(TestData.TempDir(), "notes.txt");
        File.WriteAllText(file, "mine");
        var (code, error) = Fedavg(Small(file));
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains("--out", error);
        Assert.Contains("is a file", error);
        Assert.DoesNotContain("   at ", error); // no stack trace
        Assert.Equal("mine", File.ReadAllText(file));

        (code, error) = Fedavg(Small(Path.Combine(file, "run")));
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains("is a file", error);
    }

    // sysfs refuses new files even to root, so this is a directory no test user can write in
    const string Unwritable = "/sys/fedavg-tests";

    [Fact]
    public void A_bad_out_file_is_a_usage_error_found_before_any_data_is_read()
    {
        string dir = TestData.TempDir();
        string file = Path.Combine(dir, "notes.txt");
        File.WriteAllText(file, "mine");
        // an empty data directory: a check made after loading the data would exit 3 (data missing), not 2
        string noData = Path.Combine(TestData.TempDir(), "empty");
        var cases = new (string Out, string Reason)[]
        {
            (dir, $"--out {dir} is a directory"),
            (Path.Combine(file, "x.csv"), $"{file} is a file, so no directory can be made under it"),
            (Path.Combine(Unwritable, "sub", "x.csv"), "cannot write in /sys (permission denied)"),
        };
        foreach (var command in new[] { "centralized", "partition" })
            foreach (var (output, reason) in cases)
            {
                var (code, error) = Fedavg(command, "--data-dir", noData, "--out", output);
                Assert.True(code == ExitCodes.UsageError, $"{command} --out {output}: exit {code}: {error}");
                Assert.Contains(reason, error);
                Assert.DoesNotContain("   at ", error);
                Assert.Single(error.TrimEnd().Split('\n'));
            }
        Assert.Equal("mine", File.ReadAllText(file));
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Partition_into_an_existing_directory_is_refused_and_a_good_out_still_works()
    {
        string dir = TestData.TempDir();
        var (code, error) = Fedavg("partition", "--data-dir", TestData.DataDir, "--clients", "10", "--out", dir);
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains("is a directory", error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir)); // no temporary file left either

        string json = Path.Combine(dir, "new", "shards.json");
        (code, error) = Fedavg("partition", "--data-dir", TestData.DataDir, "--clients", "10", "--out", json);
        Assert.True(code == ExitCodes.Success, error);
        Assert.Equal(10, System.Text.Json.JsonDocument.Parse(File.ReadAllText(json)).RootElement.GetProperty("clients").GetInt32());
    }

    [Fact]
    public void Simulate_refuses_an_out_it_cannot_write_in_before_any_data_is_read()
    {
        var (code, error) = Fedavg("simulate", "--data-dir", Path.Combine(TestData.TempDir(), "empty"), "--out", Path.Combine(Unwritable, "run"));
        Assert.True(code == ExitCodes.UsageError, $"exit {code}: {error}");
        Assert.Contains($"--out {Unwritable}/run: cannot write in /sys (permission denied)", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void Data_install_names_a_data_dir_it_cannot_use()
    {
        string file = Path.Combine(TestData.TempDir(), "data");
        File.WriteAllText(file, "not a directory");
        var cases = new (string DataDir, string Reason)[]
        {
            (file, $"--data-dir {file} is a file"),
            (Unwritable, $"--data-dir {Unwritable}: cannot write in /sys (permission denied)"),
        };
        foreach (var (dataDir, reason) in cases)
        {
            var (code, error) = Fedavg("data", "install", "--data-dir", dataDir, "--dataset", "fashion-mnist");
            Assert.True(code == ExitCodes.UsageError, $"--data-dir {dataDir}: exit {code}: {error}");
            Assert.Contains(reason, error);
            Assert.DoesNotContain("   at ", error);
        }
    }

    [Fact]
    public void A_result_file_that_cannot_be_written_after_the_work_is_one_line_naming_it()
    {
        var error = new StringWriter();
        int code = FedAvgCommand.Report(OutputPath.WriteFailed("runs/x.csv", new IOException("No space left on device : '/runs/.x.csv.1.2.tmp'")), error);
        Assert.Equal(ExitCodes.RuntimeFailure, code);
        Assert.Equal($"fedavg: cannot write {Path.GetFullPath("runs/x.csv")}: No space left on device : '/runs/.x.csv.1.2.tmp'.", error.ToString().TrimEnd());
    }

    [Fact]
    public void A_run_refused_once_the_data_is_loaded_leaves_no_directory_behind()
    {
        string parent = Path.Combine(TestData.TempDir(), "new");
        string dir = Path.Combine(parent, "run");
        // 100000 clients pass the option checks; the partitioner refuses them once MNIST's 60000 samples are loaded
        var (code, error) = Fedavg("simulate", "--data-dir", TestData.DataDir, "--out", dir, "--clients", "100000", "--partition", "iid");
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains("60000", error);
        Assert.False(Directory.Exists(parent), $"{parent} was created by a run that never started");

        // an existing empty --out stays as it was, too
        string empty = TestData.TempDir();
        (code, error) = Fedavg("simulate", "--data-dir", TestData.DataDir, "--out", empty, "--partition", "iid-balanced:1000");
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains("iid-balanced:1000", error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(empty));
    }

    [Fact]
    public void Mistakes_with_the_files_a_run_names_are_usage_errors_without_a_stack_trace()
    {
        string dir = TestData.TempDir();
        string file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "x");
        string withConfigOnly = Path.Combine(dir, "half-run");
        Directory.CreateDirectory(withConfigOnly);
        File.WriteAllText(Path.Combine(withConfigOnly, RunOutputs.ConfigFile), "fedavg { clients = 10 }");
        string notASection = Path.Combine(dir, "flat.conf");
        File.WriteAllText(notASection, "fedavg = 5");
        string list = Path.Combine(dir, "list.conf");
        File.WriteAllText(list, "fedavg.rounds = [1, 2]");
        var cases = new (string[] Args, string Named)[]
        {
            (["--config", dir], "is a directory"),
            (["--config", notASection], "section"),
            (["--config", list], "fedavg.rounds"),
            (["--baseline", Path.Combine(dir, "missing.csv")], "--baseline"),
            (["--reference", Path.Combine(dir, "missing.csv")], "--reference"),
            (["--resume", file], "is a file"),
            (["--resume", dir], RunOutputs.ConfigFile),
            (["--resume", withConfigOnly], Checkpoint.FileName),
            (["--resume", ""], "--resume"),
            (["--out", ""], "--out"),
            (["--standardize", "maybe"], "fedavg.standardize (--standardize)"),
            (["--target-accuracy", "2"], "fedavg.target-accuracy"),
            (["--trainers", "many"], "fedavg.trainers (--trainers)"),
        };
        foreach (var (args, named) in cases)
        {
            var (code, error) = Fedavg(["simulate", "--data-dir", TestData.DataDir, "--partition", "iid-balanced:1000", .. args]);
            Assert.True(code == ExitCodes.UsageError, $"{string.Join(' ', args)}: exit {code}: {error}");
            Assert.Contains(named, error);
            Assert.DoesNotContain("   at ", error);
        }
        Assert.Equal(["a-file", "flat.conf", "half-run", "list.conf"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void Every_setting_has_a_flag_that_sets_its_key()
    {
        // a value other than the default for every flag, given as a user types it
        var typed = new Dictionary<string, string>
        {
            ["--dataset"] = "fashion-mnist", ["--model"] = "seed000-cnn", ["--clients"] = "7", ["--partition"] = "dirichlet:0.5",
            ["--standardize"] = "on", ["--rounds"] = "3", ["--fraction"] = "0.25", ["--min-clients"] = "2", ["--local-epochs"] = "1",
            ["--batch"] = "5", ["--lr"] = "1e-5", ["--momentum"] = "0.5", ["--weight-decay"] = "0.0005", ["--seed"] = "9",
            ["--trainers"] = "3", ["--threads-per-trainer"] = "2", ["--round-timeout"] = "90s", ["--round-attempts"] = "4",
            ["--target-accuracy"] = "0.97", ["--max-update-norm"] = "3", ["--strategy"] = "fedavgm",
        };
        Assert.Equal(RunSettings.Flags.Select(s => s.Flag!).Order(), typed.Keys.Order());
        foreach (var setting in RunSettings.Flags)
        {
            var command = new Command("test");
            RunSettingsOptions.AddTo(command);
            var parse = command.Parse([setting.Flag!, typed[setting.Flag!]]);
            Assert.Empty(parse.Errors);
            string overrides = RunSettingsOptions.Overrides(parse);
            Assert.StartsWith($"{setting.Path} = ", overrides);
            var viaFlag = SimulationOptions.FromConfig(HoconFiles.Parse(overrides, "flags"));
            var viaHocon = SimulationOptions.FromConfig(HoconFiles.Parse($"{setting.Path} = \"{typed[setting.Flag!]}\"", "file"));
            Assert.Equal(viaHocon, viaFlag);
            Assert.NotEqual(setting.Write(RunSettings.Defaults), setting.Write(viaFlag));
        }

        // a bare switch is on; a flag not given sets nothing, so the files' values stay in force
        var all = new Command("test");
        RunSettingsOptions.AddTo(all);
        Assert.Equal("fedavg.standardize = on", RunSettingsOptions.Overrides(all.Parse(["--standardize"])));
        Assert.Equal("", RunSettingsOptions.Overrides(all.Parse([])));
    }

    [Fact]
    public void A_flag_overrides_the_config_file_and_config_conf_is_what_resume_reads_back()
    {
        string file = Path.Combine(TestData.TempDir(), "mine.conf");
        File.WriteAllText(file, "fedavg { rounds = 1, target-accuracy = 0.5, strategy { name = fedavgm, server-momentum = 0.5 } }");
        string dir = Path.Combine(TestData.TempDir(), "run");
        var (code, error) = Fedavg("simulate", "--data-dir", TestData.DataDir, "--config", file, "--out", dir, "--clients", "10",
            "--fraction", "0.1", "--partition", "iid", "--local-epochs", "1", "--trainers", "1", "--target-accuracy", "off");
        Assert.True(code == ExitCodes.Success, error);
        var saved = SimulationOptions.FromConfig(HoconFiles.Parse(File.ReadAllText(Path.Combine(dir, RunOutputs.ConfigFile)), "config.conf"));
        Assert.Equal((1, 10, (double?)null, "0.5"), (saved.Rounds, saved.Clients, saved.TargetAccuracy, saved.StrategyParameters["server-momentum"]));
        Assert.Contains("\"target_accuracy\": null", File.ReadAllText(Path.Combine(dir, RunOutputs.SummaryFile)));
    }

    /// <summary>
    /// What keeps an idle `fedavg` process off the trainers' cores (src/FedAvg.Cli/FedAvg.Cli.csproj): the runtime reads
    /// the thread pool's spin limit from the runtimeconfig.json beside the binary, and Akka its tick from the shipped
    /// HOCON, for every command (cluster.conf layers over simulation.conf). Measured: docs/benchmark-notes.md, 2026-12-03.
    /// </summary>
    [Fact]
    public void The_binary_ships_with_the_thread_pools_spinning_off_and_akkas_tick_at_50_ms()
    {
        string runtimeConfig = Path.Combine(Path.GetDirectoryName(FedavgProcess.Binary)!, "fedavg.runtimeconfig.json");
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(runtimeConfig));
        Assert.Equal(0, json.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties")
            .GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
        foreach (var files in new[] { new[] { "simulation.conf" }, new[] { "simulation.conf", "cluster.conf" } })
            Assert.Equal(TimeSpan.FromMilliseconds(50), HoconFiles.Load(files).GetTimeSpan("akka.scheduler.tick-duration"));
    }
}
