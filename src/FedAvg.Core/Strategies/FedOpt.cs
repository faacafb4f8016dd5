using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FedAvg.Core.Strategies;

/// <summary>
/// The adaptive server optimizers of Reddi et al. 2021, "Adaptive Federated Optimization" (ICLR), as Flower's
/// flwr/server/strategy/fedopt.py holds them for fedadam.py, fedyogi.py and fedadagrad.py. Each round:
/// w̄ = Σ nₖ·wₖ / Σ nₖ (FedAvg's sample-weighted mean, streamed), Δ = w̄ − w, m ← β₁·m + (1 − β₁)·Δ,
/// v by the rule of the subclass, and w ← w + η·m / (√v + τ). m and v start at zero, as in Flower.
/// The clients' learning rate is eta-l: it replaces lr in the round config.
/// </summary>
/// <remarks>
/// Streaming (<see cref="OrderedWeightedSum"/>): one model-size sum plus out-of-order arrivals, and the result.
/// State: m and v, two model sizes, kept across rounds and in checkpoints. Arithmetic in float32 with the
/// constants rounded to float32 once, as NumPy computes Flower's float32 arrays; the same bits in the vector part
/// and the tail.
/// </remarks>
public abstract class FedOptStrategy : Strategy
{
    protected enum SecondMoment { Adam, Yogi, Adagrad }

    float[]? m, v;

    protected FedOptStrategy(FedAvgOptions options, StrategyDescriptor descriptor, double eta, double etaL, double beta1,
        double beta2, double tau, IClientSampler? sampler)
        : base(options, sampler)
    {
        Eta = descriptor.Check("eta", eta);
        EtaL = descriptor.Check("eta-l", etaL);
        Beta1 = descriptor.Check("beta1", beta1);
        Beta2 = descriptor.Parameters.Any(p => p.Name == "beta2") ? descriptor.Check("beta2", beta2) : beta2;
        Tau = descriptor.Check("tau", tau);
    }

    public double Eta { get; }
    public double EtaL { get; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Tau { get; }

    protected abstract SecondMoment Rule { get; }

    /// <summary>The server learning rate of <paramref name="round"/> (FedAdam corrects it for bias, as Flower does).</summary>
    protected virtual double EffectiveEta(int round) => Eta;

    internal static List<StrategyParameter> Parameters(double eta, double etaL, double beta1, double? beta2, double tau)
    {
        var list = new List<StrategyParameter>
        {
            new("eta", eta, "server learning rate η", Check: StrategyParameter.Positive),
            new("eta-l", etaL, "clients' learning rate η_l (replaces lr in the round config)", Check: StrategyParameter.Positive),
            new("beta1", beta1, "first-moment decay β₁, in [0, 1)", Check: StrategyParameter.UnitInterval),
        };
        if (beta2 is { } b2) list.Add(new("beta2", b2, "second-moment decay β₂, in [0, 1)", Check: StrategyParameter.UnitInterval));
        list.Add(new("tau", tau, "adaptivity τ added to √v, above 0", Check: StrategyParameter.Positive));
        return list;
    }

    protected override RoundConfig ConfigureTraining(int round, RoundConfig config) => config.With(RoundConfig.LearningRate, EtaL);

    public override IRoundAggregator StartAggregation(RoundPlan plan, float[] current) =>
        new ThenAggregator(new OrderedWeightedSum(current.Length, plan.Clients), mean => Step(plan.Round, current, mean));

    /// <summary>One server step from <paramref name="current"/> given the round's mean; overwrites and returns <paramref name="mean"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    float[] Step(int round, float[] current, float[] mean)
    {
        int n = current.Length;
        if (m is not null && m.Length != n || v is not null && v.Length != n)
            throw new InvalidOperationException($"{Name}: saved moments have {m?.Length ?? v!.Length} values, the model {n}.");
        m ??= new float[n];
        v ??= new float[n];
        float b1 = (float)Beta1, c1 = (float)(1 - Beta1), b2 = (float)Beta2, c2 = (float)(1 - Beta2);
        float eta = (float)EffectiveEta(round), tau = (float)Tau;
        var rule = Rule;

        int width = Vector<float>.Count, vectors = n / width;
        var wv = MemoryMarshal.Cast<float, Vector<float>>(current.AsSpan());
        var outV = MemoryMarshal.Cast<float, Vector<float>>(mean.AsSpan());
        var mV = MemoryMarshal.Cast<float, Vector<float>>(m.AsSpan());
        var vV = MemoryMarshal.Cast<float, Vector<float>>(v.AsSpan());
        Vector<float> vb1 = new(b1), vc1 = new(c1), vb2 = new(b2), vc2 = new(c2), vEta = new(eta), vTau = new(tau);
        for (int i = 0; i < vectors; i++)
        {
            var delta = outV[i] - wv[i];
            var mi = vb1 * mV[i] + vc1 * delta;
            var sq = delta * delta;
            var vi = rule switch
            {
                SecondMoment.Adam => vb2 * vV[i] + vc2 * sq,
                SecondMoment.Adagrad => vV[i] + sq,
                _ => vV[i] - vc2 * sq * Sign(vV[i] - sq),
            };
            mV[i] = mi;
            vV[i] = vi;
            outV[i] = wv[i] + vEta * mi / (Vector.SquareRoot(vi) + vTau);
        }
        for (int i = vectors * width; i < n; i++)
        {
            float delta = mean[i] - current[i];
            float mi = b1 * m[i] + c1 * delta;
            float sq = delta * delta;
            float vi = rule switch
            {
                SecondMoment.Adam => b2 * v[i] + c2 * sq,
                SecondMoment.Adagrad => v[i] + sq,
                _ => v[i] - c2 * sq * MathF.Sign(v[i] - sq),
            };
            m[i] = mi;
            v[i] = vi;
            mean[i] = current[i] + eta * mi / (MathF.Sqrt(vi) + tau);
        }
        return mean;
    }

    /// <summary>np.sign: −1, 0 or +1.</summary>
    static Vector<float> Sign(Vector<float> x) =>
        Vector.ConditionalSelect(Vector.GreaterThan(x, Vector<float>.Zero), Vector<float>.One, Vector<float>.Zero)
        - Vector.ConditionalSelect(Vector.LessThan(x, Vector<float>.Zero), Vector<float>.One, Vector<float>.Zero);

    public override byte[] SaveState() => m is null ? [] : StrategyState.Write(Name, m, v);

    public override void LoadState(ReadOnlySpan<byte> state)
    {
        var vectors = StrategyState.Read(Name, 2, state);
        (m, v) = (vectors[0], vectors[1]);
    }
}
