namespace FedAvg.Core.Strategies;

/// <summary>
/// Krum: Blanchard et al. 2017, "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent" (NeurIPS);
/// Flower's flwr/server/strategy/krum.py (aggregate.py's <c>aggregate_krum</c> with <c>num_clients_to_keep = 0</c>).
/// With n updates of which at most f are Byzantine, each update's score is the sum of its squared distances to its
/// n − f − 2 nearest other updates (at least one, as in Flower); the update with the lowest score becomes the new
/// model (on a tie, the first in client-id order). Sample counts play no part: a Byzantine client could claim any.
/// </summary>
/// <remarks>
/// Buffered (<see cref="BufferedAggregator"/>): n × model, plus the result and the n × n distance matrix. The
/// pairwise distances are computed once, n(n − 1)/2 vectorised passes over two updates: O(n²·d). Stateless.
/// Needs n &gt; 2f + 2 (Blanchard et al.'s condition); the round's minimum is raised to 2f + 3 updates.
/// </remarks>
public sealed class KrumStrategy : Strategy
{
    public const string StrategyName = "krum";

    internal static StrategyParameter FParameter => new("f", 0, "number of Byzantine clients tolerated", ParameterKind.Integer, StrategyParameter.NonNegative);

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "The update closest to its n − f − 2 nearest neighbours (squared distances).", AggregationShape.Buffered,
        "Blanchard et al. 2017, Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
        "flwr/server/strategy/krum.py", [FParameter], (options, a) => new KrumStrategy(options, a.Int("f")));

    public int F { get; }

    public KrumStrategy(FedAvgOptions options, int f = 0, IClientSampler? sampler = null) : base(options, sampler)
    {
        F = (int)Descriptor.Check("f", f);
    }

    public override string Name => StrategyName;
    public override int RequiredUpdates => 2 * F + 3;

    public override void Validate(int clientsPerRound) => KrumRule.Validate(Name, clientsPerRound, F);

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new BufferedRule(current.Length, plan.Clients, updates =>
        {
            RequireUpdates(updates.Count);
            var scores = KrumRule.Scores(KrumRule.Distances(updates), Enumerable.Range(0, updates.Count).ToArray(), F);
            return (float[])updates[KrumRule.ArgMin(scores)].Weights.Clone(); // the update itself goes back to the pool
        });
}

/// <summary>Krum's arithmetic, shared with Multi-Krum and Bulyan.</summary>
public static class KrumRule
{
    internal static void Validate(string strategy, int n, int f)
    {
        if (n <= 2 * f + 2)
            throw new UsageException($"fedavg.strategy.f: {strategy} with f = {f} needs more than 2f + 2 = {2 * f + 2} clients per round, got {n}.");
    }

    /// <summary>The symmetric matrix of squared distances ‖wᵢ − wⱼ‖², each pair computed once.</summary>
    public static double[,] Distances(IReadOnlyList<ClientUpdate> updates)
    {
        int n = updates.Count;
        var d = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                d[i, j] = d[j, i] = Aggregation.SquaredDistance(updates[i].Weights, updates[j].Weights);
        return d;
    }

    /// <summary>
    /// Krum's score of each of <paramref name="among"/> (indices into the matrix) within that set: the sum of its
    /// max(1, |set| − f − 2) smallest squared distances to the others of the set.
    /// </summary>
    public static double[] Scores(double[,] distances, int[] among, int f)
    {
        int n = among.Length, nearest = Math.Max(1, n - f - 2);
        var scores = new double[n];
        var row = new double[Math.Max(0, n - 1)];
        for (int a = 0; a < n; a++)
        {
            int k = 0;
            for (int b = 0; b < n; b++)
                if (b != a) row[k++] = distances[among[a], among[b]];
            Array.Sort(row);
            double score = 0;
            for (int c = 0; c < Math.Min(nearest, row.Length); c++) score += row[c];
            scores[a] = score;
        }
        return scores;
    }

    /// <summary>The index of the lowest score; the first on a tie.</summary>
    public static int ArgMin(double[] scores)
    {
        int best = 0;
        for (int i = 1; i < scores.Length; i++)
            if (scores[i] < scores[best]) best = i;
        return best;
    }
}
