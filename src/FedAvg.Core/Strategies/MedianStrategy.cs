using System.Numerics;

namespace FedAvg.Core.Strategies;

/// <summary>
/// Coordinate-wise median: Yin et al. 2018, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
/// Rates" (ICML); Flower's flwr/server/strategy/fedmedian.py (aggregate.py's <c>aggregate_median</c>, np.median).
/// Each coordinate of the new model is the median of the updates' values there; with an even count, the mean of
/// the two middle values. Unweighted (sample counts are ignored, as in Flower and the paper): a weight would let
/// one client claiming many samples move the median.
/// </summary>
/// <remarks>Buffered (<see cref="BufferedAggregator"/>): n × model, plus the result. Stateless.</remarks>
public sealed class MedianStrategy : Strategy
{
    public const string StrategyName = "median";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "Coordinate-wise median of the updates (unweighted).", AggregationShape.Buffered,
        "Yin et al. 2018, Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
        "flwr/server/strategy/fedmedian.py", [], (options, _) => new MedianStrategy(options));

    public MedianStrategy(FedAvgOptions options, IClientSampler? sampler = null) : base(options, sampler) { }

    public override string Name => StrategyName;

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new BufferedRule(current.Length, plan.Clients, Median);

    /// <summary>The coordinate-wise median of the updates' weights.</summary>
    public static float[] Median(IReadOnlyList<ClientUpdate> updates)
    {
        int n = updates.Count;
        var half = new Vector<float>(0.5f);
        return Aggregation.CoordinateWise(updates.Select(u => u.Weights).ToArray(), sorted =>
            n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) * half);
    }
}
