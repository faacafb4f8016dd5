using FedAvg.Core.Training;

namespace FedAvg.Core.Strategies;

/// <summary>What the server asks of the sampled clients in one round.</summary>
public sealed record RoundPlan(int Round, IReadOnlyList<string> Clients, TrainConfig Config, int MinimumUpdates);

/// <summary>One client's answer to a round: its trained weights and how many samples produced them.</summary>
public sealed record ClientUpdate(string ClientId, float[] Weights, int SampleCount, double TrainLoss, double TrainAccuracy);

/// <summary>
/// The federated algorithm, as in Flower's strategies: it decides how each round is configured and how
/// the received updates become the next global model. Servers only move messages and keep time.
/// </summary>
public interface IStrategy
{
    string Name { get; }

    /// <summary>Chooses the clients of <paramref name="round"/> (1-based) and their training config. Must be deterministic.</summary>
    RoundPlan ConfigureRound(int round, IReadOnlyList<string> availableClients);

    /// <summary>The next global weights from the accepted updates; the order of <paramref name="updates"/> must not matter.</summary>
    float[] Aggregate(int round, ReadOnlySpan<float> current, IReadOnlyList<ClientUpdate> updates);
}
