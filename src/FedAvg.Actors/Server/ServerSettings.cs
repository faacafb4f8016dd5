using FedAvg.Actors.Messages;
using FedAvg.Core;
using FedAvg.Core.Models;

namespace FedAvg.Actors.Server;

/// <summary>How the server keeps time and when it stops; the algorithm itself lives in the strategy.</summary>
/// <param name="MinClientsToStart">Registered clients to wait for before round 1.</param>
/// <param name="MinClients">
/// The fewest registered clients a round can run with (the strategy's min-clients): below it, after a node was lost,
/// the server goes back to waiting for clients for up to <paramref name="WaitForClients"/>.
/// </param>
/// <param name="Spec">What nodes are told when they join (research mode computes its shards from it).</param>
/// <param name="MaxUpdateNorm">K of the norm rule (<see cref="UpdateNormRule"/>); null: off.</param>
public sealed record ServerSettings(
    string ModelName,
    WeightLayout Layout,
    int Rounds,
    int MinClientsToStart,
    TimeSpan RoundTimeout,
    int MaxRoundAttempts,
    int Seed,
    double? TargetAccuracy = null,
    string? CheckpointPath = null,
    int FirstRound = 1,
    int MinClients = 1,
    TimeSpan? WaitForClients = null,
    RunSpec? Spec = null,
    double? MaxUpdateNorm = null)
{
    public static readonly TimeSpan DefaultWaitForClients = TimeSpan.FromMinutes(10);

    public TimeSpan ClientWait => WaitForClients ?? DefaultWaitForClients;

    /// <summary>The spec nodes receive: the given one, or one that names this model and layout only.</summary>
    public RunSpec RunSpec => Spec ?? new RunSpec("fedavg", "mnist", ModelName, MinClientsToStart, "iid", Seed, false, Layout.Hash);

    public void Validate()
    {
        Require.AtLeast(Rounds, 1, "rounds");
        Require.AtLeast(MinClientsToStart, 1, "min-clients");
        Require.AtLeast(MinClients, 1, "min-clients");
        if (RoundTimeout <= TimeSpan.Zero) throw new UsageException($"round-timeout must be positive, got {RoundTimeout}.");
        if (ClientWait <= TimeSpan.Zero) throw new UsageException($"wait-for-clients must be positive, got {ClientWait}.");
        Require.AtLeast(MaxRoundAttempts, 1, "round-attempts");
        if (TargetAccuracy is { } t && !(t > 0 && t <= 1)) throw new UsageException($"target-accuracy must be in (0, 1], got {t}.");
        Require.AtLeast(FirstRound, 1, "first round");
        if (MaxUpdateNorm is { } k && !(k > 1 && double.IsFinite(k))) throw new UsageException($"max-update-norm must be more than 1, or off; got {k}.");
        if (Spec is { } s && s.LayoutHash != Layout.Hash)
            throw new ArgumentException($"run spec names layout {s.LayoutHash:x16}, the model's is {Layout.Hash:x16}.");
    }
}
