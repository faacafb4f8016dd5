namespace FedAvg.Core.Strategies;

/// <summary>
/// Multi-Krum: Blanchard et al. 2017, "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent"
/// (NeurIPS), section 5; Flower's flwr/server/strategy/krum.py with <c>num_clients_to_keep = m</c>. Scores as
/// <see cref="KrumStrategy"/>, then the m updates with the lowest scores (ties: client-id order) are averaged,
/// weighted by sample count as FedAvg does (Σ nₖ·wₖ / Σ nₖ over the m, FedAvg's arithmetic in client-id order).
/// Weighted because Flower's <c>aggregate_krum</c> hands the m best to <c>aggregate</c>, its sample-weighted mean;
/// Blanchard et al. average uniformly. The selection itself ignores sample counts, so a lying client must first
/// look like the honest ones to be averaged at all. With f = 0 and m = n this is exactly FedAvg.
/// </summary>
/// <remarks>
/// Buffered (<see cref="BufferedAggregator"/>): n × model, plus the result and the n × n distance matrix, whose
/// n(n − 1)/2 distances are computed once. Stateless. Needs n &gt; 2f + 2 and m in [1, n − f]; the round's minimum
/// is raised to max(2f + 3, m + f) updates.
/// </remarks>
public sealed class MultiKrumStrategy : Strategy
{
    public const string StrategyName = "multi-krum";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "The sample-weighted mean of the m best Krum-scored updates.", AggregationShape.Buffered,
        "Blanchard et al. 2017, Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
        "flwr/server/strategy/krum.py",
        [KrumStrategy.FParameter, new("m", null, "number of best-scored updates averaged, in [1, n − f]", ParameterKind.Integer, v => v >= 1 ? null : "must be at least 1")],
        (options, a) => new MultiKrumStrategy(options, a.Int("f"), a.Int("m")));

    public int F { get; }
    public int M { get; }

    public MultiKrumStrategy(FedAvgOptions options, int f, int m, IClientSampler? sampler = null) : base(options, sampler)
    {
        F = (int)Descriptor.Check("f", f);
        M = (int)Descriptor.Check("m", m);
    }

    public override string Name => StrategyName;
    public override int RequiredUpdates => Math.Max(2 * F + 3, M + F);

    public override void Validate(int clientsPerRound)
    {
        KrumRule.Validate(Name, clientsPerRound, F);
        if (M > clientsPerRound - F)
            throw new UsageException($"fedavg.strategy.m: multi-krum keeps m in [1, n − f] = [1, {clientsPerRound - F}] with {clientsPerRound} clients per round and f = {F}, got {M}.");
    }

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new BufferedRule(current.Length, plan.Clients, updates =>
        {
            RequireUpdates(updates.Count);
            var scores = KrumRule.Scores(KrumRule.Distances(updates), Enumerable.Range(0, updates.Count).ToArray(), F);
            var best = Select(scores, M);
            return Aggregation.WeightedMean(best.Select(i => updates[i]).ToList());
        });

    /// <summary>The indices of the <paramref name="m"/> lowest scores (ties: lower index first), in ascending index order.</summary>
    public static int[] Select(double[] scores, int m) =>
        Enumerable.Range(0, scores.Length).OrderBy(i => scores[i]).ThenBy(i => i).Take(m).Order().ToArray();
}
