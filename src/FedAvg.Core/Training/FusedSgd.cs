using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp.Modules;

namespace FedAvg.Core.Training;

/// <summary>
/// SGD with momentum and weight decay exactly as <c>torch.optim.SGD</c> defines it (no dampening, no Nesterov), in one
/// pass over each parameter's memory instead of four tensor operations and four passes; optionally with FedProx's
/// proximal term (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"; Flower's FedProx baseline adds
/// μ/2·‖w − w_global‖² to the loss), whose gradient μ·(w − w_global) joins the loss gradient before weight decay and
/// momentum, as it does when autograd computes it and torch.optim.SGD steps.
/// </summary>
/// <remarks>
/// Same arithmetic and rounding as libtorch's kernels (weight decay and the parameter update are fused multiply-adds
/// there too), so the weights equal <c>torch.optim.SGD</c>'s bit for bit; a test holds it to that.
/// <see cref="ZeroGrad"/> drops the gradients instead of zeroing them, so backward hands over fresh gradient tensors
/// instead of adding into zeroed ones (PyTorch's <c>set_to_none</c>, its default since 2.0).
/// </remarks>
public sealed class FusedSgd
{
    readonly Parameter[] parameters;
    readonly float[][] velocity;
    float[][]? anchor; // w_global per parameter, for the proximal term (allocated on first use)
    bool hasVelocity, hasAnchor;

    public FusedSgd(IEnumerable<Parameter> parameters)
    {
        this.parameters = parameters.ToArray();
        foreach (var p in this.parameters)
            if (p.dtype != TorchSharp.torch.ScalarType.Float32 || !p.is_contiguous())
                throw new ArgumentException($"{nameof(FusedSgd)} needs contiguous float32 parameters, got {p.dtype}.");
        velocity = this.parameters.Select(p => new float[p.numel()]).ToArray();
    }

    /// <summary>Forgets the momentum, as a freshly made optimizer would: the next step starts it from the gradient.</summary>
    public void Reset() => hasVelocity = false;

    /// <summary>Records the parameters as they stand as w_global, the point the proximal term pulls towards.</summary>
    public void SetAnchor()
    {
        anchor ??= parameters.Select(p => new float[p.numel()]).ToArray();
        for (int i = 0; i < parameters.Length; i++)
            MemoryMarshal.Cast<byte, float>(parameters[i].bytes).CopyTo(anchor[i]);
        hasAnchor = true;
    }

    /// <summary>Forgets w_global: a step with a proximal μ above 0 is refused until <see cref="SetAnchor"/>.</summary>
    public void ClearAnchor() => hasAnchor = false;

    public void ZeroGrad()
    {
        foreach (var p in parameters) p.grad = null;
    }

    public void Step(double learningRate, double momentum = 0, double weightDecay = 0, double proximalMu = 0)
    {
        float lr = (float)learningRate, mu = (float)momentum, decay = (float)weightDecay, prox = (float)proximalMu;
        if (prox != 0 && !hasAnchor) throw new InvalidOperationException($"{nameof(FusedSgd)}: a proximal term needs {nameof(SetAnchor)} first.");
        for (int i = 0; i < parameters.Length; i++)
        {
            using var grad = parameters[i].grad;
            if (grad is null) continue;
            if (!grad.is_contiguous()) throw new InvalidOperationException($"{nameof(FusedSgd)}: gradient {i} is not contiguous.");
            var weights = MemoryMarshal.Cast<byte, float>(parameters[i].bytes);
            var gradient = MemoryMarshal.Cast<byte, float>(grad.bytes);
            if (prox == 0) Update(weights, gradient, velocity[i], lr, mu, decay, hasVelocity);
            else Update(weights, gradient, velocity[i], lr, mu, decay, hasVelocity, anchor![i], prox);
        }
        if (momentum != 0) hasVelocity = true;
    }

    /// <summary>
    /// d = g + decay·w (fused); with momentum v = μ·v + d (v = d on the first step) and d = v; then w = w − lr·d (fused).
    /// </summary>
    public static void Update(Span<float> weights, ReadOnlySpan<float> gradient, Span<float> velocity,
        float lr, float momentum, float weightDecay, bool hasVelocity) =>
        Update(weights, gradient, velocity, lr, momentum, weightDecay, hasVelocity, default, 0);

    /// <summary>
    /// With proximal μ above 0 the gradient first becomes g + μ·(w − w_global) (fused), then as above:
    /// d = g' + decay·w (fused); with momentum v = μ·v + d (v = d on the first step) and d = v; then w = w − lr·d (fused).
    /// μ = 0 skips the proximal term entirely, so the bits are those of plain SGD.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first batch: no unoptimised tier
    public static unsafe void Update(Span<float> weights, ReadOnlySpan<float> gradient, Span<float> velocity,
        float lr, float momentum, float weightDecay, bool hasVelocity, ReadOnlySpan<float> anchor, float proximalMu)
    {
        int n = weights.Length;
        if (gradient.Length != n || velocity.Length < n) throw new ArgumentException("weights, gradient and velocity differ in length.");
        bool proximal = proximalMu != 0;
        if (proximal && anchor.Length != n) throw new ArgumentException("weights and the proximal anchor differ in length.");
        float negLr = -lr;
        bool useMomentum = momentum != 0;
        fixed (float* w = weights, g = gradient, v = velocity, a = anchor)
        {
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var vNegLr = Vector256.Create(negLr);
                var vMomentum = Vector256.Create(momentum);
                var vDecay = Vector256.Create(weightDecay);
                var vProx = Vector256.Create(proximalMu);
                for (; i + 8 <= n; i += 8)
                {
                    var wi = Vector256.Load(w + i);
                    var d = Vector256.Load(g + i);
                    if (proximal) d = Vector256.FusedMultiplyAdd(wi - Vector256.Load(a + i), vProx, d);
                    if (weightDecay != 0) d = Vector256.FusedMultiplyAdd(wi, vDecay, d);
                    if (useMomentum)
                    {
                        if (hasVelocity) d = Vector256.Load(v + i) * vMomentum + d;
                        d.Store(v + i);
                    }
                    Vector256.FusedMultiplyAdd(d, vNegLr, wi).Store(w + i);
                }
            }
            for (; i < n; i++)
            {
                float d = g[i];
                if (proximal) d = MathF.FusedMultiplyAdd(w[i] - a[i], proximalMu, d);
                if (weightDecay != 0) d = MathF.FusedMultiplyAdd(w[i], weightDecay, d);
                if (useMomentum)
                {
                    if (hasVelocity) d = v[i] * momentum + d;
                    v[i] = d;
                }
                w[i] = MathF.FusedMultiplyAdd(d, negLr, w[i]);
            }
        }
    }
}
