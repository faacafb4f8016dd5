namespace FedAvg.Core.Strategies;

/// <summary>
/// Bulyan: El Mhamdi et al. 2018, "The Hidden Vulnerability of Distributed Learning in Byzantium" (ICML); Flower's
/// flwr/server/strategy/bulyan.py (aggregate.py's <c>aggregate_bulyan</c> with Krum as the first rule). With n
/// updates and at most f Byzantine: θ = n − 2f updates are selected by Krum one at a time (each pick leaves the
/// set, the next Krum runs on what remains, its n − f − 2 counted on the remaining set, as Flower does); then,
/// coordinate by coordinate, the β = θ − 2f selected values closest to the selected values' median are averaged.
/// Unweighted, as in Flower and the paper. Ties: Krum's go to the first in client-id order; for the β closest, of two
/// values equally far from the median the smaller is taken (Flower leaves this to np.argpartition).
/// </summary>
/// <remarks>
/// Buffered (<see cref="BufferedAggregator"/>): n × model, plus the result and the n × n distance matrix, computed
/// once (n(n − 1)/2 distances) and reused by all θ Krum rounds. Stateless. Needs n ≥ 4f + 3 (the paper's
/// condition); the round's minimum is raised to 4f + 3 updates.
/// </remarks>
public sealed class BulyanStrategy : Strategy
{
    public const string StrategyName = "bulyan";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "Krum-selected θ = n − 2f updates, then the coordinate-wise mean of the β = θ − 2f closest to their median.",
        AggregationShape.Buffered, "El Mhamdi et al. 2018, The Hidden Vulnerability of Distributed Learning in Byzantium",
        "flwr/server/strategy/bulyan.py", [KrumStrategy.FParameter], (options, a) => new BulyanStrategy(options, a.Int("f")));

    public int F { get; }

    public BulyanStrategy(FedAvgOptions options, int f = 0, IClientSampler? sampler = null) : base(options, sampler)
    {
        F = (int)Descriptor.Check("f", f);
    }

    public override string Name => StrategyName;
    public override int RequiredUpdates => 4 * F + 3;

    public override void Validate(int clientsPerRound)
    {
        if (clientsPerRound < 4 * F + 3)
            throw new UsageException($"fedavg.strategy.f: bulyan with f = {F} needs at least 4f + 3 = {4 * F + 3} clients per round, got {clientsPerRound}.");
    }

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new BufferedRule(current.Length, plan.Clients, updates =>
        {
            RequireUpdates(updates.Count);
            var selected = Select(updates, F);
            return ClosestToMedianMean(selected.Select(i => updates[i].Weights).ToArray(), selected.Length - 2 * F);
        });

    /// <summary>The θ = n − 2f indices Krum picks one after another, in the order picked.</summary>
    public static int[] Select(IReadOnlyList<ClientUpdate> updates, int f)
    {
        var distances = KrumRule.Distances(updates);
        var remaining = Enumerable.Range(0, updates.Count).ToList();
        var picked = new List<int>();
        int theta = updates.Count - 2 * f;
        while (picked.Count < theta)
        {
            var set = remaining.ToArray();
            int best = KrumRule.ArgMin(KrumRule.Scores(distances, set, f));
            picked.Add(set[best]);
            remaining.RemoveAt(best);
        }
        return picked.ToArray();
    }

    /// <summary>Coordinate-wise: the mean of the <paramref name="beta"/> values closest to the median (np.median).</summary>
    public static float[] ClosestToMedianMean(IReadOnlyList<float[]> vectors, int beta)
    {
        int theta = vectors.Count;
        if (beta < 1 || beta > theta) throw new ArgumentException($"bulyan: β = {beta} of θ = {theta}.");
        int width = System.Numerics.Vector<float>.Count;
        var lane = new float[theta];
        var output = new float[width];
        return Aggregation.CoordinateWise(vectors, sorted =>
        {
            for (int j = 0; j < width; j++)
            {
                for (int r = 0; r < theta; r++) lane[r] = sorted[r][j];
                float median = theta % 2 == 1 ? lane[theta / 2] : (lane[theta / 2 - 1] + lane[theta / 2]) * 0.5f;
                // the β closest values are a window of the sorted ones: grow it from the middle
                int lo = theta / 2, hi = theta / 2; // [lo, hi)
                while (hi - lo < beta)
                {
                    if (lo == 0) hi++;
                    else if (hi == theta) lo--;
                    else if (lane[hi] - median < median - lane[lo - 1]) hi++;
                    else lo--;
                }
                float sum = 0;
                for (int r = lo; r < hi; r++) sum += lane[r];
                output[j] = sum / beta;
            }
            return new System.Numerics.Vector<float>(output);
        });
    }
}
