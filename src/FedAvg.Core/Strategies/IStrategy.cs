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

    /// <summary>
    /// Starts combining the updates of <paramref name="plan"/>'s round into the next global weights. The server
    /// hands each accepted update to the aggregator as it arrives; the result must not depend on arrival order.
    /// </summary>
    IRoundAggregator StartAggregation(RoundPlan plan, float[] current);
}

/// <summary>Folds one round's updates into the next global model.</summary>
public interface IRoundAggregator
{
    /// <summary>One accepted update (each client at most once). Called on the server's thread: keep it O(model).</summary>
    void Accept(ClientUpdate update);

    /// <summary>The next global weights, after the last <see cref="Accept"/>. May run off the server's thread.</summary>
    float[] Complete();
}
