namespace FedAvg.Core.Strategies;

/// <summary>
/// What the server asks of the sampled clients in one round: who trains, with which config, and how many answers
/// the round needs before it may close (a robust rule raises this to the number of updates it cannot do without).
/// </summary>
public sealed record RoundPlan(int Round, IReadOnlyList<string> Clients, RoundConfig Config, int MinimumUpdates);

/// <summary>One client's answer to a round: its trained weights and how many samples produced them.</summary>
public sealed record ClientUpdate(string ClientId, float[] Weights, int SampleCount, double TrainLoss, double TrainAccuracy);

/// <summary>
/// The federated algorithm, as in Flower's <c>serverapp/strategy/</c>: it decides how each round is configured
/// and how the received updates become the next global model. Servers only move messages and keep time.
/// </summary>
/// <remarks>
/// Threading: the server calls the strategy from one thread at a time. <see cref="IRoundAggregator.Complete"/> may
/// update the strategy's own state (a server optimizer's momentum or moments), and the server never calls the
/// strategy (<see cref="ConfigureRound"/>, <see cref="StartAggregation"/>, <see cref="SaveState"/>) while a Complete
/// is running. Complete can be heavy (Krum is O(n²·d), Bulyan more): the server runs it on a dedicated thread,
/// not on the actor thread pool, and gets the result back as a message. <see cref="SaveState"/> (a copy of the
/// state, two model sizes for FedAdam) runs on the checkpoint's thread, after Complete and before the next round.
/// </remarks>
public interface IStrategy
{
    /// <summary>The registry name (<see cref="StrategyRegistry"/>): fedavg, fedprox, krum, …</summary>
    string Name { get; }

    /// <summary>
    /// Checks, before any work starts, that the strategy can run with <paramref name="clientsPerRound"/> sampled
    /// clients (what <see cref="IClientSampler.SampleSize"/> gives for the federation). Throws
    /// <see cref="UsageException"/> naming the setting and the reason (Krum's n &gt; 2f + 2, Bulyan's n ≥ 4f + 3, …).
    /// </summary>
    void Validate(int clientsPerRound);

    /// <summary>Chooses the clients of <paramref name="round"/> (1-based) and their training config. Must be deterministic.</summary>
    RoundPlan ConfigureRound(int round, IReadOnlyList<string> availableClients);

    /// <summary>
    /// Starts combining the updates of <paramref name="plan"/>'s round into the next global weights. The server
    /// hands each accepted update to the aggregator as it arrives; the result must not depend on arrival order.
    /// <paramref name="current"/> is the global model the round's clients started from; it is not modified.
    /// </summary>
    IRoundAggregator StartAggregation(RoundPlan plan, float[] current);

    /// <summary>
    /// The strategy's state between rounds (server momentum, Adam's moments), for a checkpoint; empty for a
    /// stateless strategy. A strategy loaded with it continues bit-identically.
    /// </summary>
    byte[] SaveState();

    /// <summary>Restores what <see cref="SaveState"/> gave; throws <see cref="DataException"/> for foreign or damaged state.</summary>
    void LoadState(ReadOnlySpan<byte> state);
}

/// <summary>Folds one round's updates into the next global model.</summary>
/// <remarks>
/// Two shapes: streaming (<see cref="OrderedWeightedSum"/>, the FedAvg family: one model-size sum plus the updates
/// that arrived ahead of their turn) and buffered (<see cref="BufferedAggregator"/>, robust rules that need every
/// update at once: n × model).
/// </remarks>
public interface IRoundAggregator
{
    /// <summary>
    /// One accepted update (each client at most once). Called on the server's thread as updates arrive: keep it O(model).
    /// With the server's norm rule on, the kept updates come at the close instead, on the thread that then calls Complete.
    /// </summary>
    void Accept(ClientUpdate update);

    /// <summary>
    /// The next global weights, after the last <see cref="Accept"/>; a fresh vector, never one of the updates.
    /// Called once, off the server's thread (see <see cref="IStrategy"/>); may update the strategy's state.
    /// </summary>
    float[] Complete();
}
