namespace FedAvg.Core.Strategies;

/// <summary>
/// FedYogi: Reddi et al. 2021, "Adaptive Federated Optimization" (ICLR), Algorithm 2 with Yogi's second moment
/// v ← v − (1 − β₂)·Δ²·sign(v − Δ²); Flower's flwr/server/strategy/fedyogi.py, with its defaults (η = 1e-2,
/// η_l = 0.0316, β₁ = 0.9, β₂ = 0.99, τ = 1e-3) and its start v = 0. Mean over updates weighted by sample count;
/// see <see cref="FedOptStrategy"/> for the shared step, memory and state.
/// </summary>
public sealed class FedYogiStrategy : FedOptStrategy
{
    public const string StrategyName = "fedyogi";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "Server-side Yogi on the pseudo-gradient mean − w.", AggregationShape.Streaming,
        "Reddi et al. 2021, Adaptive Federated Optimization", "flwr/server/strategy/fedyogi.py",
        Parameters(eta: 1e-2, etaL: 0.0316, beta1: 0.9, beta2: 0.99, tau: 1e-3),
        (o, a) => new FedYogiStrategy(o, a["eta"], a["eta-l"], a["beta1"], a["beta2"], a["tau"]));

    public FedYogiStrategy(FedAvgOptions options, double eta = 1e-2, double etaL = 0.0316, double beta1 = 0.9, double beta2 = 0.99,
        double tau = 1e-3, IClientSampler? sampler = null)
        : base(options, Descriptor, eta, etaL, beta1, beta2, tau, sampler) { }

    public override string Name => StrategyName;
    protected override SecondMoment Rule => SecondMoment.Yogi;
}
