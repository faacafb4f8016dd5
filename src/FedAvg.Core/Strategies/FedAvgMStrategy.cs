using System.Numerics;
using System.Runtime.InteropServices;

namespace FedAvg.Core.Strategies;

/// <summary>
/// FedAvgM, FedAvg with server momentum: Hsu et al. 2019, "Measuring the Effects of Non-Identical Data Distribution
/// for Federated Visual Classification"; Flower's flwr/server/strategy/fedavgm.py, whose update this follows:
/// with the sample-weighted mean w̄ = Σ nₖ·wₖ / Σ nₖ (FedAvg's, streamed) and the pseudo-gradient g = w − w̄,
/// momentum β > 0 keeps v ← β·v + g (v = g in the first round it runs), and w ← w − η·v (η = server-lr; with β = 0,
/// w ← w − η·g). η = 1, β = 0 give FedAvg up to rounding.
/// </summary>
/// <remarks>
/// Streaming (<see cref="OrderedWeightedSum"/>): one model-size sum plus out-of-order arrivals, and the result.
/// State: the momentum vector v (one model size, kept across rounds and in checkpoints).
/// Flower starts v in round 1; here it starts in the first round with no saved v, which is the same for a run
/// from the start and lets a resumed run go on from the checkpointed v.
/// </remarks>
public sealed class FedAvgMStrategy : Strategy
{
    public const string StrategyName = "fedavgm";

    public static readonly StrategyDescriptor Descriptor = new(
        StrategyName, "FedAvg with server-side SGD momentum on the pseudo-gradient w − mean.", AggregationShape.Streaming,
        "Hsu et al. 2019, Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification",
        "flwr/server/strategy/fedavgm.py",
        [
            new("server-lr", 1.0, "server learning rate η", Check: StrategyParameter.Positive),
            new("server-momentum", 0.0, "server momentum β, in [0, 1)", Check: StrategyParameter.UnitInterval),
        ],
        (options, a) => new FedAvgMStrategy(options, a["server-lr"], a["server-momentum"]));

    public double ServerLearningRate { get; }
    public double ServerMomentum { get; }
    float[]? momentum;

    public FedAvgMStrategy(FedAvgOptions options, double serverLearningRate = 1.0, double serverMomentum = 0.0, IClientSampler? sampler = null)
        : base(options, sampler)
    {
        ServerLearningRate = Descriptor.Check("server-lr", serverLearningRate);
        ServerMomentum = Descriptor.Check("server-momentum", serverMomentum);
    }

    public override string Name => StrategyName;

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new ThenAggregator(new OrderedWeightedSum(current.Length, plan.Clients), mean => Step(current, mean));

    /// <summary>One server step from <paramref name="current"/> given the round's mean; overwrites and returns <paramref name="mean"/>.</summary>
    float[] Step(float[] current, float[] mean)
    {
        float lr = (float)ServerLearningRate, beta = (float)ServerMomentum;
        if (momentum is not null && momentum.Length != current.Length)
            throw new InvalidOperationException($"fedavgm: saved momentum has {momentum.Length} values, the model {current.Length}.");
        bool useMomentum = beta > 0;
        bool first = momentum is null;
        if (useMomentum) momentum ??= new float[current.Length];
        var v = useMomentum ? momentum! : null;
        int width = Vector<float>.Count, vectors = current.Length / width;
        var cv = MemoryMarshal.Cast<float, Vector<float>>(current.AsSpan());
        var mv = MemoryMarshal.Cast<float, Vector<float>>(mean.AsSpan());
        var vv = v is null ? default : MemoryMarshal.Cast<float, Vector<float>>(v.AsSpan());
        var vLr = new Vector<float>(lr);
        var vBeta = new Vector<float>(beta);
        for (int i = 0; i < vectors; i++)
        {
            var g = cv[i] - mv[i];
            if (useMomentum)
            {
                g = first ? g : vBeta * vv[i] + g;
                vv[i] = g;
            }
            mv[i] = cv[i] - vLr * g;
        }
        for (int i = vectors * width; i < current.Length; i++)
        {
            float g = current[i] - mean[i];
            if (useMomentum)
            {
                g = first ? g : beta * v![i] + g;
                v![i] = g;
            }
            mean[i] = current[i] - lr * g;
        }
        return mean;
    }

    public override byte[] SaveState() => momentum is null ? [] : StrategyState.Write(StrategyName, momentum);

    public override void LoadState(ReadOnlySpan<byte> state) => momentum = StrategyState.Read(StrategyName, 1, state)[0];
}
