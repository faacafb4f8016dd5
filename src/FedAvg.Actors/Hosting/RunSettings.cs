using System.Globalization;
using Akka.Configuration;
using FedAvg.Core;
using FedAvg.Core.Data;
using FedAvg.Core.Models;
using FedAvg.Core.Partitioning;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// One setting of a run, declared once in <see cref="RunSettings"/>: its HOCON key under `fedavg`, its command-line
/// flag, help text, default, how it is read from and written to HOCON, and which values it allows. Everything else
/// (reading a configuration, the unknown-key check, config.conf, validation, the CLI options) is derived from these.
/// </summary>
public abstract class Setting
{
    private protected Setting(string key, string? flag, string help, string valueHint)
    {
        Key = key;
        Flag = flag;
        Help = help;
        ValueHint = valueHint;
    }

    /// <summary>The path under the `fedavg` section, e.g. `round-timeout` or `strategy.name`.</summary>
    public string Key { get; }

    /// <summary>The full HOCON path, `fedavg.KEY`.</summary>
    public string Path => $"{RunSettings.Section}.{Key}";

    /// <summary>The command-line flag (`--round-timeout`), or null for a setting only HOCON can give.</summary>
    public string? Flag { get; }

    public string Help { get; }

    /// <summary>What the flag takes, for help: N, X, NAME, DURATION…</summary>
    public string ValueHint { get; }

    /// <summary>A flag that needs no value (`--standardize` means on).</summary>
    public abstract bool IsSwitch { get; }

    /// <summary>The default as a HOCON value (`auto` for trainers, `off` for no target accuracy).</summary>
    public abstract string DefaultHocon { get; }

    /// <summary>How errors name this setting: `fedavg.lr (--lr)`.</summary>
    public string Label => Flag is null ? Path : $"{Path} ({Flag})";

    /// <summary>The HOCON value for what the user typed after the flag; null is a switch given alone, which means on.
    /// The text is quoted as it is: reading it as this setting's type, and the error naming the flag, is FromConfig's.</summary>
    public string FlagValueToHocon(string? text) => text is null && IsSwitch ? "on" : HoconText.Quote(text ?? "");

    internal abstract SimulationOptions ReadInto(SimulationOptions options, Config section);
    /// <summary>This setting's value in OPTIONS as config.conf writes it.</summary>
    public abstract string Write(SimulationOptions options);
    internal abstract void Validate(SimulationOptions options);
    internal abstract bool SameValue(SimulationOptions a, SimulationOptions b);
    internal abstract int HashOf(SimulationOptions options);
}

/// <summary>A setting whose value is a <typeparamref name="T"/> held in one property of <see cref="SimulationOptions"/>.</summary>
public sealed class Setting<T> : Setting
{
    readonly Func<Config, string, T> read;
    readonly Func<T, string> write;
    readonly Action<T, string>? validate;
    readonly Func<SimulationOptions, T, SimulationOptions> set;
    readonly IEqualityComparer<T> comparer;
    readonly string? defaultHocon;

    internal Setting(string key, string? flag, string valueHint, T @default, string help,
        Func<SimulationOptions, T> get, Func<SimulationOptions, T, SimulationOptions> set,
        Func<Config, string, T> read, Func<T, string> write, Action<T, string>? validate = null,
        string? defaultHocon = null, IEqualityComparer<T>? comparer = null)
        : base(key, flag, help, valueHint)
    {
        Default = @default;
        Get = get;
        this.set = set;
        this.read = read;
        this.write = write;
        this.validate = validate;
        this.defaultHocon = defaultHocon;
        this.comparer = comparer ?? EqualityComparer<T>.Default;
    }

    public T Default { get; }
    public Func<SimulationOptions, T> Get { get; }
    public override bool IsSwitch => typeof(T) == typeof(bool);
    public override string DefaultHocon => defaultHocon ?? write(Default);

    /// <summary>Reads the value from the `fedavg` section; a missing key keeps the default.</summary>
    public T Read(Config section)
    {
        if (!section.HasPath(Key)) return Default;
        if (typeof(T) != typeof(IReadOnlyDictionary<string, string>) && typeof(T) != typeof(IReadOnlyList<Faults.FaultRule>)
            && section.GetValue(Key) is { } v && (v.IsArray() || v.IsObject()))
            throw new UsageException($"{Label} must be a single value, not a list or a section.");
        try
        {
            return read(section, Key);
        }
        catch (Exception e) when (e is not UsageException)
        {
            throw new UsageException($"{Label}: {HoconText.Describe(section, Key)} is not a valid value ({e.Message}).");
        }
    }

    internal override SimulationOptions ReadInto(SimulationOptions options, Config section) => set(options, Read(section));
    public override string Write(SimulationOptions options) => write(Get(options));
    internal override void Validate(SimulationOptions options) => validate?.Invoke(Get(options), Label);
    internal override bool SameValue(SimulationOptions a, SimulationOptions b) => comparer.Equals(Get(a), Get(b));
    internal override int HashOf(SimulationOptions options) => Get(options) is { } v ? comparer.GetHashCode(v) : 0;
}

/// <summary>
/// The settings of a run (`fedavg simulate`, and every host that runs a federation), declared once each.
/// <see cref="SimulationOptions.FromConfig"/> reads them, <see cref="SimulationOptions.ToHocon"/> writes them,
/// <see cref="SimulationOptions.Validate"/> checks them, and the CLI turns each into a flag (FedAvg.Cli.RunSettingsOptions).
/// A key absent from every HOCON layer takes the default declared here: hocon/simulation.conf holds no `fedavg`
/// block, so there is no second copy of the defaults to keep in step.
/// </summary>
public static class RunSettings
{
    public const string Section = "fedavg";

    public static readonly Setting<string> Dataset = Text("dataset", "--dataset", "NAME", "mnist",
        $"Dataset: {string.Join(", ", DatasetCatalog.All.Select(d => d.Name))}.",
        o => o.Dataset, (o, v) => o with { Dataset = v }, (v, _) => DatasetCatalog.Get(v));

    public static readonly Setting<string> Model = Text("model", "--model", "NAME", "seed001-2nn",
        $"Model: {string.Join(", ", ModelZoo.Names)}.",
        o => o.Model, (o, v) => o with { Model = v }, (v, _) => ModelZoo.Validate(v));

    public static readonly Setting<int> Clients = Int("clients", "--clients", 100, "K: how many clients share the training set.",
        o => o.Clients, (o, v) => o with { Clients = v }, AtLeast(1));

    public static readonly Setting<string> Partition = Text("partition", "--partition", "SPEC", "iid-balanced:450",
        "iid[:n], iid-balanced[:n], contiguous, shards[:s], dirichlet:α, classes:k.",
        o => o.Partition, (o, v) => o with { Partition = v }, (v, _) => Partitioner.Parse(v));

    public static readonly Setting<bool> Standardize = new("standardize", "--standardize", "on|off", false,
        "Standardize pixels with the dataset's mean and std (seed 001 used [0,1] pixels).",
        o => o.Standardize, (o, v) => o with { Standardize = v }, (c, k) => c.GetBoolean(k), v => v ? "on" : "off");

    public static readonly Setting<int> Rounds = Int("rounds", "--rounds", 11, "Communication rounds.",
        o => o.Rounds, (o, v) => o with { Rounds = v }, AtLeast(1));

    public static readonly Setting<double> Fraction = Number("fraction", "--fraction", 1.0,
        "C: the fraction of clients sampled each round, in (0, 1].",
        o => o.Fraction, (o, v) => o with { Fraction = v }, (v, name) => Require.InRange(v, 0, 1, name));

    public static readonly Setting<int> MinClients = Int("min-clients", "--min-clients", 1,
        "The fewest updates that make a round (and the fewest clients sampled).",
        o => o.MinClients, (o, v) => o with { MinClients = v }, AtLeast(1));

    public static readonly Setting<int> LocalEpochs = Int("local-epochs", "--local-epochs", 10, "E: local epochs per round.",
        o => o.LocalEpochs, (o, v) => o with { LocalEpochs = v }, AtLeast(1));

    public static readonly Setting<int> Batch = Int("batch", "--batch", 32, "B: local mini-batch size.",
        o => o.Batch, (o, v) => o with { Batch = v }, AtLeast(1));

    public static readonly Setting<double> LearningRate = Number("lr", "--lr", 0.01, "Local SGD learning rate.",
        o => o.LearningRate, (o, v) => o with { LearningRate = v }, Require.Positive);

    public static readonly Setting<double> Momentum = Number("momentum", "--momentum", 0.9, "Local SGD momentum, in [0, 1).",
        o => o.Momentum, (o, v) => o with { Momentum = v },
        (v, name) => { if (!(v >= 0 && v < 1)) throw new UsageException($"{name} must be in [0, 1), got {v}."); });

    public static readonly Setting<double> WeightDecay = Number("weight-decay", "--weight-decay", 0.0, "Local L2 weight decay.",
        o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Require.NonNegative);

    public static readonly Setting<int> Seed = Int("seed", "--seed", 1, "Seed of initialisation, partition, sampling and shuffling.",
        o => o.Seed, (o, v) => o with { Seed = v });

    public static readonly Setting<int> Trainers = new("trainers", "--trainers", "N|auto",
        TrainerPool.DefaultShape(Environment.ProcessorCount).Trainers,
        "P: trainings that run at once; auto is one one-thread trainer per core (faster here than fewer, wider ones).",
        o => o.Trainers, (o, v) => o with { Trainers = v },
        (c, k) => c.GetString(k) == "auto" ? TrainerPool.DefaultShape(Environment.ProcessorCount).Trainers : Whole(c, k),
        v => v.ToString(CultureInfo.InvariantCulture), AtLeast(1), defaultHocon: "auto");

    public static readonly Setting<int> ThreadsPerTrainer = Int("threads-per-trainer", "--threads-per-trainer", 1,
        "T: libtorch intra-op threads of each trainer.",
        o => o.ThreadsPerTrainer, (o, v) => o with { ThreadsPerTrainer = v }, AtLeast(1));

    public static readonly Setting<TimeSpan> RoundTimeout = new("round-timeout", "--round-timeout", "DURATION", TimeSpan.FromMinutes(10),
        "Round deadline, e.g. 90s or 10m (to the millisecond): a round closes with what arrived by then if at least min-clients did.",
        o => o.RoundTimeout, (o, v) => o with { RoundTimeout = v },
        (c, k) => HoconText.WholeMilliseconds(c.GetTimeSpan(k, null, allowInfinite: false)), HoconText.Duration,
        (v, name) => { if (v <= TimeSpan.Zero) throw new UsageException($"{name} must be positive, such as 90s or 10m, got {HoconText.Duration(v)}."); },
        defaultHocon: "10m");

    public static readonly Setting<int> RoundAttempts = Int("round-attempts", "--round-attempts", 2,
        "How often a round that got too few updates is tried in all.",
        o => o.RoundAttempts, (o, v) => o with { RoundAttempts = v }, AtLeast(1));

    /// <summary>No target is null, written `off` (a 0 in HOCON, as run directories of earlier versions say, is read as off).</summary>
    public static readonly Setting<double?> TargetAccuracy = new("target-accuracy", "--target-accuracy", "X|off", null,
        "Stop once the test accuracy reaches X in (0, 1] and report the rounds it took; off runs every round.",
        o => o.TargetAccuracy, (o, v) => o with { TargetAccuracy = v },
        (c, k) => c.GetString(k) == "off" ? null : Finite(c, k) is var t && t != 0 ? t : null,
        v => v is { } t ? HoconText.Number(t) : "off",
        (v, name) => { if (v is { } t) Require.InRange(t, 0, 1, name); });

    /// <summary>
    /// The server's norm rule (Server/UpdateNormRule.cs, docs/faults.md): when a round closes, refuse every update whose
    /// ‖w_local − w_global‖ is more than K times the median of the round's updates. Off by default: the default run stays
    /// seed 001's, FedAvg keeps folding updates as they arrive (with the rule on, the server holds the round's updates),
    /// and no honest update can be refused by a bound nobody chose for the run.
    /// </summary>
    public static readonly Setting<double?> MaxUpdateNorm = new("server.max-update-norm", "--max-update-norm", "K|off", null,
        "Refuse an update whose norm ‖Δ‖ exceeds K × the median ‖Δ‖ of the round's updates (K > 1; the server then holds a round's updates until it closes); off: no norm rule.",
        o => o.MaxUpdateNorm, (o, v) => o with { MaxUpdateNorm = v },
        (c, k) => c.GetString(k) == "off" ? null : Finite(c, k),
        v => v is { } k ? HoconText.Number(k) : "off",
        (v, name) => { if (v is { } k && !(k > 1)) throw new UsageException($"{name} must be more than 1 (the median update itself is at 1×), or off; got {HoconText.Number(k)}."); });

    /// <summary>The strategy's name; the strategy registry decides which names exist.</summary>
    public static readonly Setting<string> StrategyName = Text("strategy.name", "--strategy", "NAME", "fedavg",
        "The aggregation strategy; its parameters go in the fedavg.strategy { … } section of a --config file.",
        o => o.StrategyName, (o, v) => o with { StrategyName = v },
        (v, name) =>
        {
            if (string.IsNullOrWhiteSpace(v)) throw new UsageException($"{name} must name a strategy.");
            if (!StrategyRegistry.Names.Contains(v)) throw new UsageException($"{name}: {StrategyRegistry.Unknown(v)}");
        });

    /// <summary>Every other key of `fedavg.strategy`, kept as text for the strategy to parse.</summary>
    public static readonly Setting<IReadOnlyDictionary<string, string>> StrategyParameters = new("strategy", null, "", new SortedDictionary<string, string>(StringComparer.Ordinal),
        "The strategy's own parameters (every key of fedavg.strategy but name).",
        o => o.StrategyParameters, (o, v) => o with { StrategyParameters = v },
        (c, k) => HoconText.Parameters(c, k, except: "name"), HoconText.ParametersBody, comparer: HoconText.DictionaryComparer);

    /// <summary>
    /// Injected faults (docs/faults.md), a list only HOCON gives: `faults = [ { behaviour = sign-flip, fraction = 0.2 },
    /// { behaviour = "delay:30s", clients = [3, 7], from-round = 2, probability = 0.5 } ]`. Client ids are checked against
    /// `clients` by <see cref="SimulationOptions.Validate"/>.
    /// </summary>
    public static readonly Setting<IReadOnlyList<Faults.FaultRule>> Faults = new("faults", null, "", [],
        "Injected faults: a list of { behaviour, clients | fraction, probability, from-round } (docs/faults.md).",
        o => o.Faults, (o, v) => o with { Faults = v },
        (c, k) => Actors.Faults.FaultRule.ReadList(c, k, $"{Section}.{k}"), Actors.Faults.FaultRule.ListToHocon,
        comparer: Actors.Faults.FaultRule.ListComparer);

    /// <summary>Every setting, in the order of config.conf and of --help.</summary>
    public static IReadOnlyList<Setting> All { get; } =
    [
        Dataset, Model, Clients, Partition, Standardize, Rounds, Fraction, MinClients, LocalEpochs, Batch, LearningRate,
        Momentum, WeightDecay, Seed, Trainers, ThreadsPerTrainer, RoundTimeout, RoundAttempts, TargetAccuracy,
        MaxUpdateNorm, StrategyName, StrategyParameters, Faults,
    ];

    /// <summary>The keys a `fedavg` section may hold (`strategy` is an object: name and the strategy's parameters).</summary>
    public static IReadOnlyList<string> TopLevelKeys { get; } = All.Select(s => s.Key.Split('.')[0]).Distinct().ToArray();

    /// <summary>
    /// Sub-sections of `fedavg` that other hosts own and read themselves: `cluster` (hocon/cluster.conf, read by
    /// <see cref="ClusterOptions"/>). A run's settings never include them, and config.conf does not carry them.
    /// </summary>
    public static IReadOnlyList<string> OtherSections { get; } = ["cluster"];

    /// <summary>The settings that have a command-line flag.</summary>
    public static IEnumerable<Setting> Flags => All.Where(s => s.Flag is not null);

    /// <summary>Every default: what a configuration without a `fedavg` section means.</summary>
    public static SimulationOptions Defaults => new();

    static Setting<string> Text(string key, string flag, string hint, string @default, string help,
        Func<SimulationOptions, string> get, Func<SimulationOptions, string, SimulationOptions> set, Action<string, string>? validate) =>
        new(key, flag, hint, @default, help, get, set, (c, k) => c.GetString(k), HoconText.Quote, validate);

    static Setting<int> Int(string key, string flag, int @default, string help,
        Func<SimulationOptions, int> get, Func<SimulationOptions, int, SimulationOptions> set, Action<int, string>? validate = null) =>
        new(key, flag, "N", @default, help, get, set, (c, k) => Whole(c, k), v => v.ToString(CultureInfo.InvariantCulture), validate);

    static Setting<double> Number(string key, string flag, double @default, string help,
        Func<SimulationOptions, double> get, Func<SimulationOptions, double, SimulationOptions> set, Action<double, string> validate) =>
        new(key, flag, "X", @default, help, get, set, (c, k) => Finite(c, k), HoconText.Number, validate);

    // the reason in our words: .NET's ("The input string 'abc' was not in a correct format.") repeats the value and names no type
    static int Whole(Config c, string key)
    {
        try
        {
            return c.GetInt(key);
        }
        catch (FormatException)
        {
            throw new FormatException("not a whole number");
        }
        catch (OverflowException)
        {
            throw new FormatException($"a whole number from {int.MinValue:N0} to {int.MaxValue:N0} is expected");
        }
    }

    static double Finite(Config c, string key)
    {
        double v;
        try
        {
            v = c.GetDouble(key);
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new FormatException("not a number");
        }
        return double.IsFinite(v) ? v : throw new FormatException("not a finite number");
    }

    static Action<int, string> AtLeast(int minimum) => (v, name) => Require.AtLeast(v, minimum, name);
}
