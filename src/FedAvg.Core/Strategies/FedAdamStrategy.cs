namespace FedAvg.Core.Strategies;

/// <summary>
/// FedAdam: Reddi et al. 2021, "Adaptive Federated Optimization" (ICLR), Algorithm 2 with Adam's second moment
/// v ← β₂·v + (1 − β₂)·Δ²; Flower's flwr/server/strategy/fedadam.py, defaults and update included: Flower scales
/// η by Adam's bias correction, η_t = η·√(1 − β₂^(t+1)) / (1 − β₁^(t+1)) with t the 1-based round (Kingma and
/// Ba 2014's α_t); bias-correction = off gives the paper's plain η. Mean over updates weighted by sample count;
/// see <see cref="FedOptStrategy"/> for the shared step, memory and state.
/// </summary>
public sealed class FedAdamStrategy : FedOptStrategy
{
    public const string StrategyName = "fedadam";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "Server-side Adam on the pseudo-gradient mean − w.", AggregationShape.Streaming,
        "Reddi et al. 2021, Adaptive Federated Optimization", "flwr/server/strategy/fedadam.py",
        [
            .. Parameters(eta: 1e-1, etaL: 1e-1, beta1: 0.9, beta2: 0.99, tau: 1e-9),
            new("bias-correction", 1, "scale η by √(1 − β₂^(t+1)) / (1 − β₁^(t+1)) as Flower does (off: the paper's η)", ParameterKind.Boolean),
        ],
        (o, a) => new FedAdamStrategy(o, a["eta"], a["eta-l"], a["beta1"], a["beta2"], a["tau"], a.Bool("bias-correction")));

    public bool BiasCorrection { get; }

    public FedAdamStrategy(FedAvgOptions options, double eta = 1e-1, double etaL = 1e-1, double beta1 = 0.9, double beta2 = 0.99,
        double tau = 1e-9, bool biasCorrection = true, IClientSampler? sampler = null)
        : base(options, Descriptor, eta, etaL, beta1, beta2, tau, sampler)
    {
        BiasCorrection = biasCorrection;
    }

    public override string Name => StrategyName;
    protected override SecondMoment Rule => SecondMoment.Adam;

    protected override double EffectiveEta(int round) =>
        BiasCorrection ? Eta * Math.Sqrt(1 - Math.Pow(Beta2, round + 1.0)) / (1 - Math.Pow(Beta1, round + 1.0)) : Eta;
}
