namespace FedAvg.Core.Strategies;

/// <summary>
/// FedProx: Li et al. 2020, "Federated Optimization in Heterogeneous Networks" (MLSys); Flower's
/// flwr/server/strategy/fedprox.py. The server side is FedAvg's (same sampling, the same sample-weighted mean
/// Σ nₖ·wₖ / Σ nₖ); what changes is local training: the round config carries <c>proximal-mu</c> = μ and each
/// client minimises loss + μ/2·‖w − w_global‖² (<see cref="Training.FusedSgd"/> adds μ·(w − w_global) to the gradient).
/// μ = 0 is exactly FedAvg.
/// </summary>
/// <remarks>
/// Streaming (<see cref="OrderedWeightedSum"/>): one model-size sum plus out-of-order arrivals. Stateless. Like
/// Flower's <c>proximal_mu</c>, μ has no default: choose it (Li et al. tune it over {0.001, 0.01, 0.1, 1}).
/// </remarks>
public sealed class FedProxStrategy : Strategy
{
    public const string StrategyName = "fedprox";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "FedAvg with a proximal term μ/2·‖w − w_global‖² in each client's loss.", AggregationShape.Streaming,
        "Li et al. 2020, Federated Optimization in Heterogeneous Networks", "flwr/server/strategy/fedprox.py",
        [new("mu", null, "weight μ of the proximal term μ/2·‖w − w_global‖² (0 is FedAvg)", Check: StrategyParameter.NonNegative)],
        (options, a) => new FedProxStrategy(options, a["mu"]));

    public double Mu { get; }

    public FedProxStrategy(FedAvgOptions options, double mu, IClientSampler? sampler = null) : base(options, sampler)
    {
        Mu = Descriptor.Check("mu", mu);
    }

    public override string Name => StrategyName;

    protected override RoundConfig ConfigureTraining(int round, RoundConfig config) => config.With(RoundConfig.ProximalMu, Mu);

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new OrderedWeightedSum(current.Length, plan.Clients);
}
