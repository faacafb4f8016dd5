using Akka.Configuration;
using FedAvg.Core;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// Everything a run needs, resolved from the `fedavg` section of the layered HOCON. Each property is one setting
/// of <see cref="RunSettings"/>, which declares its key, flag, default and allowed values; a new setting is a
/// property here and a declaration there, nothing else.
/// </summary>
public sealed record SimulationOptions
{
    public string Dataset { get; init; } = RunSettings.Dataset.Default;
    public string Model { get; init; } = RunSettings.Model.Default;
    public int Clients { get; init; } = RunSettings.Clients.Default;
    public string Partition { get; init; } = RunSettings.Partition.Default;
    public bool Standardize { get; init; } = RunSettings.Standardize.Default;
    public int Rounds { get; init; } = RunSettings.Rounds.Default;
    public double Fraction { get; init; } = RunSettings.Fraction.Default;
    public int MinClients { get; init; } = RunSettings.MinClients.Default;
    public int LocalEpochs { get; init; } = RunSettings.LocalEpochs.Default;
    public int Batch { get; init; } = RunSettings.Batch.Default;
    public double LearningRate { get; init; } = RunSettings.LearningRate.Default;
    public double Momentum { get; init; } = RunSettings.Momentum.Default;
    public double WeightDecay { get; init; } = RunSettings.WeightDecay.Default;
    public int Seed { get; init; } = RunSettings.Seed.Default;
    public int Trainers { get; init; } = RunSettings.Trainers.Default;
    public int ThreadsPerTrainer { get; init; } = RunSettings.ThreadsPerTrainer.Default;
    public TimeSpan RoundTimeout { get; init; } = RunSettings.RoundTimeout.Default;
    public int RoundAttempts { get; init; } = RunSettings.RoundAttempts.Default;
    /// <summary>Stop once the test accuracy reaches this; null: run every round.</summary>
    public double? TargetAccuracy { get; init; } = RunSettings.TargetAccuracy.Default;
    /// <summary>The server's norm rule: K of `server.max-update-norm`; null: off.</summary>
    public double? MaxUpdateNorm { get; init; } = RunSettings.MaxUpdateNorm.Default;
    public string StrategyName { get; init; } = RunSettings.StrategyName.Default;
    /// <summary>The keys of `fedavg.strategy` other than name, as text; the strategy parses and checks them.</summary>
    public IReadOnlyDictionary<string, string> StrategyParameters { get; init; } = RunSettings.StrategyParameters.Default;

    /// <summary>Injected faults (`fedavg.faults`); empty: none.</summary>
    public IReadOnlyList<Faults.FaultRule> Faults { get; init; } = RunSettings.Faults.Default;

    /// <summary>The run's faults as a plan over its K clients, seeded with its seed.</summary>
    public Faults.FaultPlan FaultPlan => new(Faults, Seed, Clients);

    public TrainConfig Train => new(LocalEpochs, Batch, LearningRate, Momentum, WeightDecay);
    public FedAvgOptions Strategy => new(Fraction, MinClients, Train, Seed);

    /// <summary>
    /// Reads and checks the `fedavg` section; a key no layer gives takes its declared default. An unknown key, or a
    /// bad value, is a <see cref="UsageException"/> naming `fedavg.KEY`.
    /// </summary>
    public static SimulationOptions FromConfig(Config config)
    {
        var section = SectionOf(config);
        var options = RunSettings.Defaults;
        foreach (var setting in RunSettings.All) options = setting.ReadInto(options, section);
        options.Validate();
        return options;
    }

    /// <summary>
    /// Checks each setting <paramref name="config"/> gives on its own (its key, type and range), without the checks
    /// between settings: for a --config file that flags override. `rounds = abc` under `--rounds 5` was taken in
    /// silence, and the file then failed, or meant something else, in the next run that used it without the flag.
    /// </summary>
    public static void CheckEach(Config config)
    {
        var section = SectionOf(config);
        foreach (var setting in RunSettings.All) setting.Validate(setting.ReadInto(RunSettings.Defaults, section));
    }

    /// <summary>The `fedavg` section, its keys checked (<see cref="CheckKeys"/>); empty when there is none.</summary>
    static Config SectionOf(Config config)
    {
        Config? section;
        try
        {
            section = config.HasPath(RunSettings.Section) && config.GetValue(RunSettings.Section).IsObject()
                ? config.GetConfig(RunSettings.Section) : null;
        }
        catch (Exception e) when (e is NullReferenceException or ConfigurationException or InvalidCastException)
        {
            section = null; // Akka throws these for a `fedavg = 5` layered over a section
        }
        if (section is null && config.HasPath(RunSettings.Section))
            throw new UsageException($"{RunSettings.Section} must be a section of settings, e.g. {RunSettings.Section} {{ clients = 10 }}.");
        section ??= Config.Empty;
        CheckKeys(section);
        return section;
    }

    /// <summary>
    /// Refuses a key of the `fedavg` section that is no setting, naming it and listing the valid ones: at the top
    /// (`fedavg.roundz`), and inside a section made only of settings (`fedavg.server.max-update-nrom` was taken in
    /// silence, and the run went on without its norm rule). `fedavg.strategy`'s keys are the strategy's to check, and
    /// `fedavg.cluster`'s are <see cref="ClusterOptions"/>'.
    /// </summary>
    public static void CheckKeys(Config section)
    {
        if (section.IsEmpty) return;
        foreach (var (key, value) in section.AsEnumerable())
        {
            if (!RunSettings.TopLevelKeys.Contains(key) && !RunSettings.OtherSections.Contains(key))
                throw new UsageException($"{RunSettings.Section}.{key} is not a setting. Valid settings: {string.Join(", ", RunSettings.TopLevelKeys)}.");
            if (RunSettings.OtherSections.Contains(key) || RunSettings.All.Any(s => s.Key == key) || !value.IsObject()) continue;
            var valid = RunSettings.All.Where(s => s.Key.StartsWith(key + ".", StringComparison.Ordinal)).Select(s => s.Key[(key.Length + 1)..]).ToList();
            foreach (var (inner, _) in section.GetConfig(key).AsEnumerable())
                if (!valid.Contains(inner))
                    throw new UsageException($"{RunSettings.Section}.{key}.{inner} is not a setting. Valid settings in {RunSettings.Section}.{key}: {string.Join(", ", valid)}.");
        }
    }

    /// <summary>
    /// The settings a resumed run may change from those its run directory's config.conf holds: how long it goes on and
    /// how hard it waits, and how this machine trains. The others make another experiment (another partition, another
    /// local optimiser), whose rounds would follow the checkpoint's as if one run had made them all.
    /// </summary>
    public static IReadOnlyList<Setting> ChangeableOnResume { get; } =
    [
        RunSettings.Rounds, RunSettings.TargetAccuracy, RunSettings.Trainers, RunSettings.ThreadsPerTrainer,
        RunSettings.RoundTimeout, RunSettings.RoundAttempts, RunSettings.MinClients,
    ];

    /// <summary>Refuses a resumed run whose settings differ from <paramref name="stored"/> (config.conf) beyond <see cref="ChangeableOnResume"/>, naming each one.</summary>
    public void CheckResumableFrom(SimulationOptions stored, string runDirectory)
    {
        // the model, the seed and the strategy are held against the checkpoint itself (RunStart), as a data error
        Setting[] checkedByCheckpoint = [RunSettings.Model, RunSettings.Seed, RunSettings.StrategyName];
        var changed = RunSettings.All.Where(s => !ChangeableOnResume.Contains(s) && !checkedByCheckpoint.Contains(s) && !s.SameValue(this, stored))
            .Select(s => $"{s.Label} {s.Write(this)} (the run has {s.Write(stored)})").ToList();
        if (changed.Count > 0)
            throw new UsageException($"--resume {runDirectory}: a resumed run keeps its settings, and these differ from its config.conf: {string.Join("; ", changed)}. " +
                                     $"Only {string.Join(", ", ChangeableOnResume.Select(s => s.Flag ?? s.Path))} may change.");
    }

    /// <summary>Each setting's own check, then the ones between settings.</summary>
    public void Validate()
    {
        foreach (var setting in RunSettings.All) setting.Validate(this);
        TrainerPool.ValidateShape(Trainers, ThreadsPerTrainer, Environment.ProcessorCount, RunSettings.Trainers.Label, RunSettings.ThreadsPerTrainer.Label);
        if (MinClients > Clients)
            throw new UsageException($"{RunSettings.MinClients.Label} ({MinClients}) is more than the {Clients} clients that exist ({RunSettings.Clients.Label}).");
        FaultPlan.Validate($"{RunSettings.Faults.Path}"); // a fault aimed at a client that does not exist
        CreateStrategy(); // an unknown strategy, a bad parameter or an f too large for the clients per round fails here
    }

    /// <summary>
    /// The run's strategy, by name from the registry, checked against the clients it samples per round (Krum needs
    /// n > 2f + 2, Bulyan n ≥ 4f + 3). Every host builds its strategy here.
    /// </summary>
    public IStrategy CreateStrategy()
    {
        var strategy = StrategyRegistry.Create(StrategyName, StrategyParameters, Strategy);
        strategy.Validate(Strategy.Sampler().SampleSize(Clients));
        return strategy;
    }

    /// <summary>
    /// The options as a `fedavg { … }` HOCON block: written to a run directory's config.conf, read back by --resume
    /// to the same options (strings quoted, doubles round-trip formatted, durations exact).
    /// </summary>
    public string ToHocon()
    {
        var lines = new List<string> { $"{RunSettings.Section} {{" };
        foreach (var group in RunSettings.All.GroupBy(s => s.Key.Split('.')[0]))
        {
            if (group.Count() == 1 && !group.Single().Key.Contains('.') && group.Key != RunSettings.StrategyParameters.Key)
            {
                lines.Add($"  {group.Key} = {group.Single().Write(this)}");
                continue;
            }
            lines.Add($"  {group.Key} {{");
            foreach (var setting in group)
            {
                string text = setting.Write(this);
                if (setting.Key == group.Key) // a whole-object setting writes the body itself
                    lines.AddRange(text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => "    " + l));
                else
                    lines.Add($"    {setting.Key[(group.Key.Length + 1)..]} = {text}");
            }
            lines.Add("  }");
        }
        lines.Add("}");
        lines.Add("");
        return string.Join("\n", lines);
    }

    public bool Equals(SimulationOptions? other) =>
        other is not null && RunSettings.All.All(s => s.SameValue(this, other));

    public override int GetHashCode() => RunSettings.All.Aggregate(0, (h, s) => HashCode.Combine(h, s.HashOf(this)));
}
