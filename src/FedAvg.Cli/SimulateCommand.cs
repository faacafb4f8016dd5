using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core;
using FedAvg.Core.Native;
using FedAvg.Core.Data;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;
using Spectre.Console;

namespace FedAvg.Cli;

/// <summary>
/// `fedavg simulate` (a whole federation in one process, on actors) and `fedavg server` (the server of a federation
/// whose clients are on `fedavg node` processes): the same settings, run directory, progress and result files.
/// </summary>
public static class SimulateCommand
{
    sealed record ReferenceCurves(List<(int, double)>? Centralized, List<(int, double)>? Reference, string ReferenceLabel);

    /// <summary>Starts a run: the checkpoint to resume from, what to call once it has really started, and each round.</summary>
    public delegate Task<SimulationResult> Runner(Checkpoint? resumeFrom, string checkpointPath, Action onStarted, Action<RoundMetrics> onRound,
        CancellationToken cancel);

    /// <summary>The host of a run command: its HOCON files, its own flags, and how it runs.</summary>
    public sealed record Host(string Name, string Description, string[] HoconFiles, Option[] ExtraOptions,
        Func<ParseResult, SimulationOptions, Akka.Configuration.Config, DatasetStore, Runner> Create)
    {
        /// <summary>Checks a --config file as it stands, before flags and the environment are laid over it (the run settings; a server also its `fedavg.cluster`).</summary>
        public Action<Akka.Configuration.Config> CheckFile { get; init; } = SimulationOptions.CheckEach;
    }

    public static Command Create() => Create(new Host("simulate", "Run a federation of K clients and a server on actors, in this process.",
        ["simulation.conf"], [],
        (_, options, akka, store) => (checkpoint, checkpointPath, onStarted, onRound, cancel) => new Simulation
        {
            CheckpointPath = checkpointPath,
            ResumeFrom = checkpoint,
            OnStarted = onStarted,
            OnRound = onRound,
        }.RunAsync(options, akka, store, cancel)));

    public static Command Create(Host host)
    {
        var config = new Option<string?>("--config") { Description = $"A HOCON file layered over hocon/{string.Join(" and hocon/", host.HoconFiles)} (flags override both); " +
            "settings without a flag go there: the strategy's parameters (fedavg.strategy { … }) and injected faults (fedavg.faults = [ … ], docs/faults.md)." };
        var output = new Option<string?>("--out") { Description = $"Run directory (default: runs/{host.Name}-TIMESTAMP)." };
        var resume = new Option<string?>("--resume") { Description = "Continue the stopped run in this directory from its last checkpoint." };
        var force = new Option<bool>("--force") { Description = "Replace the run in an existing --out directory." };
        var baseline = new Option<string?>("--baseline") { Description = "A `fedavg centralized` CSV to plot on the same axes." };
        var reference = new Option<string?>("--reference") { Description = "A CSV of round,test_accuracy (e.g. a paper's figures) to plot on the same axes." };
        var dataDir = CommonOptions.DataDir();

        var command = new Command(host.Name, host.Description);
        RunSettingsOptions.AddTo(command);
        foreach (var o in new Option[] { config, output, resume, force, baseline, reference, dataDir }.Concat(host.ExtraOptions)) command.Options.Add(o);

        command.SetAction((parse, cancel) =>
        {
            NativeTuning.Apply(); // this host's process-wide native settings, before any model exists
            string? resumeDir = parse.GetValue(resume);
            string? userConfig = parse.GetValue(config);
            if (parse.GetValue(output) is { } o && string.IsNullOrWhiteSpace(o)) throw new UsageException("--out needs a directory name.");
            if (resumeDir is not null && string.IsNullOrWhiteSpace(resumeDir)) throw new UsageException("--resume needs a run directory.");
            if (resumeDir is not null && parse.GetValue(output) is not null)
                throw new UsageException("--resume DIR continues the run in DIR; do not pass --out as well.");
            if (resumeDir is not null && parse.GetValue(force))
                throw new UsageException("--resume DIR continues the run in DIR; --force (start over, replacing it) contradicts it.");
            if (resumeDir is not null && userConfig is not null)
                throw new UsageException("--resume DIR reads its configuration from DIR/config.conf; do not pass --config as well.");
            if (resumeDir is not null)
            {
                if (File.Exists(resumeDir)) throw new UsageException($"--resume {resumeDir} is a file; give the directory of a `fedavg simulate` run.");
                if (!Directory.Exists(resumeDir)) throw new UsageException($"--resume {resumeDir}: no such directory; give the directory of an earlier run.");
                userConfig = Path.Combine(resumeDir, RunOutputs.ConfigFile);
                if (!File.Exists(userConfig))
                    throw new UsageException($"--resume {resumeDir}: no {RunOutputs.ConfigFile} there; is it a `fedavg simulate` run directory?");
            }
            else if (userConfig is not null && Directory.Exists(userConfig))
            {
                throw new UsageException($"--config {userConfig} is a directory; give a HOCON file.");
            }

            if (resumeDir is null) HoconFiles.CheckFileAlone(host.HoconFiles, userConfig, host.CheckFile);
            var akka = HoconFiles.Load(host.HoconFiles, userConfig, RunSettingsOptions.Overrides(parse));
            var options = SimulationOptions.FromConfig(akka);
            string dir = resumeDir ?? parse.GetValue(output) ?? Path.Combine("runs", $"{host.Name}-{DateTime.Now:yyyyMMdd-HHmmss}");
            var outputs = new RunOutputs(dir);
            outputs.Check(parse.GetValue(force), resumeDir is not null);
            if (resumeDir is not null) // --clients 50 on a run of 100 was taken, and went on with another partition
                options.CheckResumableFrom(SimulationOptions.FromConfig(HoconFiles.Load(host.HoconFiles, userConfig, "")), resumeDir);
            var curves = new ReferenceCurves(
                parse.GetValue(baseline) is { } b ? AccuracyPlot.ReadCurve(b, "epoch", "--baseline") : null,
                parse.GetValue(reference) is { } r ? AccuracyPlot.ReadCurve(r, "round", "--reference") : null,
                parse.GetValue(reference) is { } name ? Path.GetFileNameWithoutExtension(name) : "reference");
            var store = new DatasetStore(parse.GetValue(dataDir)!);
            return Execute(options, host.Create(parse, options, akka, store), outputs, resumeDir is not null, curves, cancel);
        });
        return command;
    }

    static async Task<int> Execute(SimulationOptions options, Runner runner, RunOutputs outputs,
        bool resume, ReferenceCurves curves, CancellationToken cancel)
    {
        Checkpoint? checkpoint = resume ? Checkpoint.Load(outputs.PathOf(Checkpoint.FileName), options.Model) : null;
        if (checkpoint is not null && checkpoint.Round >= options.Rounds)
            throw new UsageException($"--resume: the run already completed round {checkpoint.Round} of {options.Rounds}; pass --rounds N with N > {checkpoint.Round} to go on.");

        AnsiConsole.MarkupLine(Markup.Escape(
            $"FedAvg · {options.Dataset} · {options.Model} · K={options.Clients} C={options.Fraction} E={options.LocalEpochs} " +
            $"B={options.Batch} lr={options.LearningRate} momentum={options.Momentum} · {options.Partition} · {options.Rounds} rounds · " +
            $"P={options.Trainers}×T={options.ThreadsPerTrainer} · seed {options.Seed}" +
            (checkpoint is null ? "" : $" · resuming after round {checkpoint.Round}")));
        if (options.Model == "seed000-cnn" && options.ThreadsPerTrainer > 1)
            Console.Error.WriteLine("warning: libtorch 2.10's oneDNN gives seed000-cnn's first convolution NaN gradients at more than one " +
                                    "intra-op thread (docs/benchmark-notes.md); clients will fail with non-finite updates. Use --threads-per-trainer 1.");

        int firstRound = (checkpoint?.Round ?? 0) + 1;
        Task<SimulationResult> Run(Action<RoundMetrics> show) => runner(checkpoint, outputs.PathOf(Checkpoint.FileName),
            // Nothing is written before the run has really started: a run refused at start leaves no directory.
            onStarted: () =>
            {
                outputs.Create();
                AnsiConsole.MarkupLine(Markup.Escape($"Run directory: {outputs.Directory}"));
                AtomicFile.WriteAllText(outputs.PathOf(RunOutputs.ConfigFile),
                    "# The resolved configuration of this run: `fedavg simulate --resume DIR` (or `fedavg server --resume DIR`) reads it back.\n" + options.ToHocon());
            },
            onRound: m =>
            {
                outputs.Add(m);
                show(m);
            }, cancel);

        SimulationResult result;
        if (AnsiConsole.Profile.Capabilities.Interactive)
        {
            result = await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async ctx =>
                {
                    // Akka's log and the server's membership lines print above the bar, not through it
                    using var lines = ConsoleLines.Through((line, _) => AnsiConsole.WriteLine(line));
                    var bar = ctx.AddTask($"round {firstRound}/{options.Rounds} · training", maxValue: options.Rounds - firstRound + 1);
                    return await Run(m =>
                    {
                        bar.Increment(1);
                        bar.Description = $"round {m.Round}/{options.Rounds} · acc {m.TestAccuracy:F4} · {m.RoundSeconds:F1}s/round";
                    });
                });
        }
        else
        {
            result = await Run(m => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"round {m.Round}/{options.Rounds}: test accuracy {m.TestAccuracy:F4}, loss {m.TestLoss:F4}, " +
                $"{m.Succeeded}/{m.Sampled} clients, {m.RoundSeconds:F2}s")));
        }

        WriteSummary(options, outputs, result);
        if (!result.Completed)
        {
            AnsiConsole.MarkupLine($"[red]Run failed:[/] {Markup.Escape(result.FailureReason ?? "unknown reason")}");
            // a run that failed in its first round has no checkpoint, and --resume would refuse the directory
            AnsiConsole.MarkupLine(Markup.Escape(File.Exists(outputs.PathOf(Checkpoint.FileName))
                ? $"The last checkpoint is in {outputs.Directory}; continue with --resume {outputs.Directory}."
                : $"No round completed, so {outputs.Directory} holds no checkpoint to resume from: start the run again."));
            return ExitCodes.RunFailed;
        }

        using (var trainer = new LocalTrainer(options.Model))
        {
            var module = trainer.ModuleWith(result.FinalWeights!);
            AtomicFile.Write(outputs.PathOf(RunOutputs.ModelFile), s => module.save(new BinaryWriter(s)));
        }
        AccuracyPlot.Save(outputs.PathOf(RunOutputs.PlotFile),
            outputs.Rounds.Select(r => (r.Round, r.TestAccuracy)).ToList(), $"FedAvg {options.Model} K={options.Clients} {options.Partition}",
            curves.Centralized, curves.Reference, curves.ReferenceLabel);
        PrintTable(outputs.Rounds);
        if (options.TargetAccuracy is { } target)
            AnsiConsole.MarkupLine(result.TargetReachedAtRound is { } at
                ? $"Target accuracy {target} reached after [green]{at}[/] rounds."
                : $"Target accuracy {target} [yellow]not reached[/] in {options.Rounds} rounds.");
        AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"Wall time {result.Elapsed.TotalSeconds:F1}s, trainers busy {result.TrainerBusy.TotalSeconds:F1}s, peak RSS {ProcessMemory.PeakResidentBytes() / 1048576.0:F0} MB.")));
        AnsiConsole.MarkupLine(Markup.Escape($"Wrote {outputs.Directory}: {RunOutputs.RoundsCsv}, {RunOutputs.RoundsJsonl}, " +
                                             $"{RunOutputs.ModelFile}, {RunOutputs.PlotFile}, {RunOutputs.ConfigFile}, {RunOutputs.SummaryFile}."));
        return ExitCodes.Success;
    }

    static void WriteSummary(SimulationOptions options, RunOutputs outputs, SimulationResult result)
    {
        var last = outputs.Rounds.LastOrDefault();
        var summary = new
        {
            completed = result.Completed,
            failure = result.FailureReason,
            rounds = last?.Round ?? 0,
            final_test_accuracy = last?.TestAccuracy,
            target_accuracy = options.TargetAccuracy,
            target_reached_at_round = result.TargetReachedAtRound,
            wall_seconds = result.Elapsed.TotalSeconds,
            trainer_busy_seconds = result.TrainerBusy.TotalSeconds,
            peak_rss_mb = ProcessMemory.PeakResidentBytes() / (1024.0 * 1024.0),
            trainers = options.Trainers,
            threads_per_trainer = options.ThreadsPerTrainer,
        };
        AtomicFile.WriteAllText(outputs.PathOf(RunOutputs.SummaryFile), JsonSerializer.Serialize(summary, new JsonSerializerOptions { WriteIndented = true }));
    }

    static void PrintTable(IReadOnlyList<RoundMetrics> rounds)
    {
        var table = new Table().AddColumns("round", "clients ok/sampled", "test loss", "test acc", "train loss", "round s", "aggregate s", "evaluate s");
        foreach (var r in rounds)
            table.AddRow(r.Round.ToString(), $"{r.Succeeded}/{r.Sampled}", r.TestLoss.ToString("F4"), r.TestAccuracy.ToString("F4"),
                r.MeanTrainLoss.ToString("F4"), r.RoundSeconds.ToString("F2"), r.AggregationSeconds.ToString("F3"), r.EvaluationSeconds.ToString("F3"));
        AnsiConsole.Write(table);
    }
}
