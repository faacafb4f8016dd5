using System.Numerics;

namespace FedAvg.Core.Strategies;

/// <summary>
/// Coordinate-wise trimmed mean: Yin et al. 2018, "Byzantine-Robust Distributed Learning: Towards Optimal
/// Statistical Rates" (ICML); Flower's flwr/server/strategy/fedtrimmedavg.py (aggregate.py's
/// <c>aggregate_trimmed_avg</c>, after scipy.stats.trim_mean). For each coordinate, the ⌊β·n⌋ smallest and the
/// ⌊β·n⌋ largest values are dropped and the rest averaged. Unweighted, as in Flower and the paper.
/// </summary>
/// <remarks>Buffered (<see cref="BufferedAggregator"/>): n × model, plus the result. Stateless.</remarks>
public sealed class TrimmedMeanStrategy : Strategy
{
    public const string StrategyName = "trimmed-mean";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "Coordinate-wise mean after dropping the ⌊β·n⌋ lowest and highest values (unweighted).", AggregationShape.Buffered,
        "Yin et al. 2018, Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
        "flwr/server/strategy/fedtrimmedavg.py",
        [new("beta", 0.2, "fraction of the values cut from each end, in [0, 0.5)", Check: b => b >= 0 && b < 0.5 ? null : "must be in [0, 0.5): a cut of half from each end leaves nothing")],
        (options, a) => new TrimmedMeanStrategy(options, a["beta"]));

    public double Beta { get; }

    public TrimmedMeanStrategy(FedAvgOptions options, double beta = 0.2, IClientSampler? sampler = null) : base(options, sampler)
    {
        Beta = Descriptor.Check("beta", beta);
    }

    public override string Name => StrategyName;

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new BufferedRule(current.Length, plan.Clients, u => TrimmedMean(u, Beta));

    /// <summary>How many values each end loses with n updates: ⌊β·n⌋ (scipy's and Flower's <c>int(proportiontocut * nobs)</c>).</summary>
    public static int Cut(double beta, int n) => (int)(beta * n);

    /// <summary>The coordinate-wise trimmed mean; the kept values are added in ascending order.</summary>
    public static float[] TrimmedMean(IReadOnlyList<ClientUpdate> updates, double beta)
    {
        int n = updates.Count, cut = Cut(beta, n), kept = n - 2 * cut;
        if (kept <= 0) throw new ArgumentException($"trimmed-mean: β = {beta} cuts every one of {n} updates.");
        var count = new Vector<float>(kept);
        return Aggregation.CoordinateWise(updates.Select(u => u.Weights).ToArray(), sorted =>
        {
            var sum = Vector<float>.Zero;
            for (int r = cut; r < n - cut; r++) sum += sorted[r];
            return sum / count;
        });
    }
}
