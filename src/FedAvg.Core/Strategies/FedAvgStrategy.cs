namespace FedAvg.Core.Strategies;

/// <summary>
/// FedAvg, Federated Averaging: McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
/// Decentralized Data" (AISTATS); Flower's flwr/server/strategy/fedavg.py (and aggregate.py's <c>aggregate</c>).
/// Each round samples max(C·K, min) clients (<see cref="SeededFractionSampler"/>) and sets
/// w ← Σ nₖ·wₖ / Σ nₖ, weighted by each client's sample count nₖ.
/// </summary>
/// <remarks>Streaming (<see cref="OrderedWeightedSum"/>): one model-size sum plus out-of-order arrivals. Stateless.</remarks>
public sealed class FedAvgStrategy : Strategy
{
    public const string StrategyName = "fedavg";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "Federated Averaging: the sample-weighted mean of the updates.", AggregationShape.Streaming,
        "McMahan et al. 2017, Communication-Efficient Learning of Deep Networks from Decentralized Data",
        "flwr/server/strategy/fedavg.py", [], (options, _) => new FedAvgStrategy(options));

    public FedAvgStrategy(FedAvgOptions options, IClientSampler? sampler = null) : base(options, sampler) { }

    public override string Name => StrategyName;

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new OrderedWeightedSum(current.Length, plan.Clients);

    /// <summary>Σ nₖ·wₖ / Σ nₖ over all <paramref name="updates"/> (any order), as one round would compute it.</summary>
    public static float[] WeightedAverage(int length, IReadOnlyList<ClientUpdate> updates)
    {
        var ids = updates.Select(u => u.ClientId).Order(StringComparer.Ordinal).ToList();
        if (ids.Distinct().Count() != ids.Count) throw new ArgumentException($"two updates from one client: {string.Join(", ", ids)}.");
        var aggregator = new OrderedWeightedSum(length, ids);
        foreach (var u in updates) aggregator.Accept(u);
        return aggregator.Complete();
    }

    /// <summary>acc += x · factor, vectorised (kept here for callers of the old place; see <see cref="Aggregation.MultiplyAdd"/>).</summary>
    public static void MultiplyAdd(Span<float> acc, ReadOnlySpan<float> x, float factor) => Aggregation.MultiplyAdd(acc, x, factor);
}
