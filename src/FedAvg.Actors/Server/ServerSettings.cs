using FedAvg.Core;
using FedAvg.Core.Models;

namespace FedAvg.Actors.Server;

/// <summary>How the server keeps time and when it stops; the algorithm itself lives in the strategy.</summary>
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
    int FirstRound = 1)
{
    public void Validate()
    {
        Require.AtLeast(Rounds, 1, "rounds");
        Require.AtLeast(MinClientsToStart, 1, "min-clients");
        if (RoundTimeout <= TimeSpan.Zero) throw new UsageException($"round-timeout must be positive, got {RoundTimeout}.");
        Require.AtLeast(MaxRoundAttempts, 1, "round-attempts");
        if (TargetAccuracy is { } t && !(t > 0 && t <= 1)) throw new UsageException($"target-accuracy must be in (0, 1], got {t}.");
        Require.AtLeast(FirstRound, 1, "first round");
    }
}

/// <summary>A client the server creates and supervises itself (single-node simulation).</summary>
public sealed record LocalClient(string Id, Func<Akka.Actor.IActorRef, Akka.Actor.Props> Props);
