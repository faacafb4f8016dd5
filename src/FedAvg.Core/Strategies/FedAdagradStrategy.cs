namespace FedAvg.Core.Strategies;

/// <summary>
/// FedAdagrad: Reddi et al. 2021, "Adaptive Federated Optimization" (ICLR), Algorithm 2 with Adagrad's second moment
/// v ← v + Δ²; Flower's flwr/server/strategy/fedadagrad.py, with its defaults (η = 1e-1, η_l = 1e-1, τ = 1e-9) and
/// its β₁ = 0 (m = Δ; settable here). Adagrad's rule has no β₂, so fedadagrad takes none. Mean over updates
/// weighted by sample count; see <see cref="FedOptStrategy"/> for the shared step, memory and state.
/// </summary>
public sealed class FedAdagradStrategy : FedOptStrategy
{
    public const string StrategyName = "fedadagrad";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "Server-side Adagrad on the pseudo-gradient mean − w.", AggregationShape.Streaming,
        "Reddi et al. 2021, Adaptive Federated Optimization", "flwr/server/strategy/fedadagrad.py",
        Parameters(eta: 1e-1, etaL: 1e-1, beta1: 0.0, beta2: null, tau: 1e-9),
        (o, a) => new FedAdagradStrategy(o, a["eta"], a["eta-l"], a["beta1"], a["tau"]));

    public FedAdagradStrategy(FedAvgOptions options, double eta = 1e-1, double etaL = 1e-1, double beta1 = 0.0, double tau = 1e-9,
        IClientSampler? sampler = null)
        : base(options, Descriptor, eta, etaL, beta1, 0.0, tau, sampler) { }

    public override string Name => StrategyName;
    protected override SecondMoment Rule => SecondMoment.Adagrad;
}
