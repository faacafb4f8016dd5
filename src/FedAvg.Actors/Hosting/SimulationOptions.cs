using Akka.Configuration;
using FedAvg.Core;
using FedAvg.Core.Data;
using FedAvg.Core.Models;
using FedAvg.Core.Partitioning;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Hosting;

/// <summary>Everything a simulation needs, resolved from the `fedavg` section of the layered HOCON.</summary>
public sealed record SimulationOptions(
    string Dataset, string Model, int Clients, string Partition, bool Standardize,
    int Rounds, double Fraction, int MinClients,
    int LocalEpochs, int Batch, double LearningRate, double Momentum, double WeightDecay,
    int Seed, int Trainers, int ThreadsPerTrainer, TimeSpan RoundTimeout, int RoundAttempts, double TargetAccuracy)
{
    public TrainConfig Train => new(LocalEpochs, Batch, LearningRate, Momentum, WeightDecay);
    public FedAvgOptions Strategy => new(Fraction, MinClients, Train, Seed);

    /// <summary>Reads and checks the `fedavg` section; any bad value is a <see cref="UsageException"/> naming the key.</summary>
    public static SimulationOptions FromConfig(Config config)
    {
        var c = config.GetConfig("fedavg") ?? throw new UsageException("configuration has no `fedavg` section.");
        foreach (var key in c.AsEnumerable().Select(kv => kv.Key))
            if (!Keys.Contains(key))
                throw new UsageException($"fedavg.{key} is not a setting. Valid settings: {string.Join(", ", Keys)}.");
        var options = new SimulationOptions(
            Dataset: Get(c, "dataset", k => c.GetString(k)),
            Model: Get(c, "model", k => c.GetString(k)),
            Clients: Get(c, "clients", k => c.GetInt(k)),
            Partition: Get(c, "partition", k => c.GetString(k)),
            Standardize: Get(c, "standardize", k => c.GetBoolean(k)),
            Rounds: Get(c, "rounds", k => c.GetInt(k)),
            Fraction: Get(c, "fraction", k => c.GetDouble(k)),
            MinClients: Get(c, "min-clients", k => c.GetInt(k)),
            LocalEpochs: Get(c, "local-epochs", k => c.GetInt(k)),
            Batch: Get(c, "batch", k => c.GetInt(k)),
            LearningRate: Get(c, "lr", k => c.GetDouble(k)),
            Momentum: Get(c, "momentum", k => c.GetDouble(k)),
            WeightDecay: Get(c, "weight-decay", k => c.GetDouble(k)),
            Seed: Get(c, "seed", k => c.GetInt(k)),
            Trainers: Get(c, "trainers", k => c.GetString(k) == "auto" ? TrainerPool.DefaultShape(Environment.ProcessorCount).Trainers : c.GetInt(k)),
            ThreadsPerTrainer: Get(c, "threads-per-trainer", k => c.GetInt(k)),
            RoundTimeout: Get(c, "round-timeout", k => c.GetTimeSpan(k, null, allowInfinite: false)),
            RoundAttempts: Get(c, "round-attempts", k => c.GetInt(k)),
            TargetAccuracy: Get(c, "target-accuracy", k => c.GetDouble(k)));
        options.Validate();
        return options;
    }

    static readonly string[] Keys =
    [
        "dataset", "model", "clients", "partition", "standardize", "rounds", "fraction", "min-clients", "local-epochs", "batch",
        "lr", "momentum", "weight-decay", "seed", "trainers", "threads-per-trainer", "round-timeout", "round-attempts", "target-accuracy",
    ];

    static T Get<T>(Config section, string key, Func<string, T> read)
    {
        if (!section.HasPath(key)) throw new UsageException($"fedavg.{key} is missing from the configuration.");
        try
        {
            return read(key);
        }
        catch (Exception e) when (e is FormatException or ConfigurationException or InvalidCastException or OverflowException or ArgumentException)
        {
            throw new UsageException($"fedavg.{key}: '{section.GetString(key)}' is not a valid value ({e.Message}).");
        }
    }

    public void Validate()
    {
        DatasetCatalog.Get(Dataset);
        ModelZoo.Validate(Model);
        Require.AtLeast(Clients, 1, "clients");
        Partitioner.Parse(Partition);
        Require.AtLeast(Rounds, 1, "rounds");
        Strategy.Validate();
        if (MinClients > Clients) throw new UsageException($"min-clients ({MinClients}) is more than the {Clients} clients that exist.");
        Require.AtLeast(Trainers, 1, "trainers");
        Require.AtLeast(ThreadsPerTrainer, 1, "threads-per-trainer");
        if (RoundTimeout <= TimeSpan.Zero) throw new UsageException($"round-timeout must be positive, got {RoundTimeout}.");
        Require.AtLeast(RoundAttempts, 1, "round-attempts");
        if (!(TargetAccuracy >= 0 && TargetAccuracy <= 1)) throw new UsageException($"target-accuracy must be in [0, 1], got {TargetAccuracy}.");
    }

    /// <summary>The options as a `fedavg { … }` HOCON block: written to a run directory, read back by --resume.</summary>
    public string ToHocon() => string.Join("\n",
    [
        "fedavg {",
        $"  dataset = {Dataset}", $"  model = {Model}", $"  clients = {Clients}", $"  partition = \"{Partition}\"",
        $"  standardize = {(Standardize ? "on" : "off")}", $"  rounds = {Rounds}", $"  fraction = {Num(Fraction)}",
        $"  min-clients = {MinClients}", $"  local-epochs = {LocalEpochs}", $"  batch = {Batch}", $"  lr = {Num(LearningRate)}",
        $"  momentum = {Num(Momentum)}", $"  weight-decay = {Num(WeightDecay)}", $"  seed = {Seed}", $"  trainers = {Trainers}",
        $"  threads-per-trainer = {ThreadsPerTrainer}", $"  round-timeout = {(long)RoundTimeout.TotalMilliseconds}ms",
        $"  round-attempts = {RoundAttempts}", $"  target-accuracy = {Num(TargetAccuracy)}",
        "}", "",
    ]);

    static string Num(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
}
