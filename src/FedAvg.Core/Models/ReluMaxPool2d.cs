using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace FedAvg.Core.Models;

/// <summary>
/// ReLU followed by a 2×2 max-pool with stride 2 (floor mode), in one branch-free pass each way.
/// </summary>
/// <remarks>
/// libtorch 2.10's NCHW max-pool is a scalar loop whose comparisons mispredict on real activations: it took a third
/// of seed002-cnn's training time (docs/benchmarks.md). Because ReLU is monotone, relu(max(x)) = max(relu(x)), so the
/// pair is one kernel here: the activation is never materialised at full resolution and backward needs only the input.
/// Forward values and input gradients equal <c>max_pool2d(relu(x), 2)</c>'s bit for bit: the gradient goes to the first
/// maximum of each window in row-major order, and nowhere when the window's maximum is not positive. A NaN anywhere
/// in a window makes its output NaN.
/// </remarks>
public sealed class ReluMaxPool2d : nn.Module<Tensor, Tensor>
{
    public ReluMaxPool2d() : base(nameof(ReluMaxPool2d)) { }

    public override Tensor forward(Tensor input) => ReluMaxPoolFunction.apply(input);
}

sealed class ReluMaxPoolFunction : autograd.SingleTensorFunction<ReluMaxPoolFunction>
{
    public override string Name => nameof(ReluMaxPool2d);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        var (planes, height, width) = ReluMaxPoolKernel.Shape(input);
        var x = input.contiguous();
        var y = empty([input.shape[0], input.shape[1], height / 2, width / 2], ScalarType.Float32);
        ReluMaxPoolKernel.Forward(x.bytes, y.bytes, planes, height, width);
        ctx.save_for_backward([input]);
        return y;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var x = ctx.get_saved_variables()[0].contiguous();
        var (planes, height, width) = ReluMaxPoolKernel.Shape(x);
        var gradInput = empty_like(x);
        ReluMaxPoolKernel.Backward(x.bytes, gradOutput.contiguous().bytes, gradInput.bytes, planes, height, width);
        return [gradInput];
    }
}

/// <summary>The kernels on raw float32 NCHW memory, one row pair of one plane at a time, split over libtorch's intra-op threads.</summary>
public static unsafe class ReluMaxPoolKernel
{
    public static (int Planes, int Height, int Width) Shape(Tensor input)
    {
        if (input.dtype != ScalarType.Float32)
            throw new ArgumentException($"{nameof(ReluMaxPool2d)} takes float32 input, got {input.dtype}.");
        if (input.dim() != 4)
            throw new ArgumentException($"{nameof(ReluMaxPool2d)} takes [N,C,H,W] input, got {input.dim()} dimensions.");
        long planes = input.shape[0] * input.shape[1], height = input.shape[2], width = input.shape[3];
        if (height < 2 || width < 2)
            throw new ArgumentException($"{nameof(ReluMaxPool2d)} needs H and W of at least 2, got {height}×{width}.");
        if (planes * height * width > int.MaxValue)
            throw new ArgumentException($"{nameof(ReluMaxPool2d)}: input of {planes * height * width} elements is too large.");
        return ((int)planes, (int)height, (int)width);
    }

    /// <summary>y[p, i, j] = max(0, x[p, 2i..2i+1, 2j..2j+1]).</summary>
    public static void Forward(ReadOnlySpan<byte> input, Span<byte> output, int planes, int height, int width)
    {
        int outH = height / 2, outW = width / 2;
        Check(input.Length, planes * height * width, output.Length, planes * outH * outW);
        fixed (byte* x = input, y = output)
        {
            nint xAddress = (nint)x, yAddress = (nint)y;
            ForEachRowPair(planes * outH, (first, end) =>
            {
                float* xs = (float*)xAddress, ys = (float*)yAddress;
                for (int r = first; r < end; r++)
                {
                    int plane = r / outH, row = r % outH;
                    float* top = xs + ((long)plane * height + 2 * row) * width;
                    ForwardRowPair(top, top + width, ys + (long)r * outW, outW);
                }
            });
        }
    }

    /// <summary>
    /// dx = dy at the first maximum (row-major) of each window whose maximum is positive, 0 elsewhere,
    /// including the last row and column that floor mode leaves out.
    /// </summary>
    public static void Backward(ReadOnlySpan<byte> input, ReadOnlySpan<byte> gradOutput, Span<byte> gradInput, int planes, int height, int width)
    {
        int outH = height / 2, outW = width / 2;
        Check(input.Length, planes * height * width, gradOutput.Length, planes * outH * outW);
        if (gradInput.Length != input.Length) throw new ArgumentException("gradient and input differ in size.");
        fixed (byte* x = input, g = gradOutput, d = gradInput)
        {
            nint xAddress = (nint)x, gAddress = (nint)g, dAddress = (nint)d;
            ForEachRowPair(planes * outH, (first, end) =>
            {
                float* xs = (float*)xAddress, gs = (float*)gAddress, ds = (float*)dAddress;
                for (int r = first; r < end; r++)
                {
                    int plane = r / outH, row = r % outH;
                    long offset = ((long)plane * height + 2 * row) * width;
                    BackwardRowPair(xs + offset, xs + offset + width, gs + (long)r * outW, ds + offset, ds + offset + width, width, outW);
                    if (row == outH - 1 && height % 2 == 1)
                        new Span<float>(ds + offset + 2 * width, width).Clear();
                }
            });
        }
    }

    static void Check(int inputBytes, long inputElements, int outputBytes, long outputElements)
    {
        if (inputBytes != inputElements * sizeof(float) || outputBytes != outputElements * sizeof(float))
            throw new ArgumentException("buffer sizes do not match the shape.");
    }

    /// <summary>On libtorch's OpenMP team of the calling thread's intra-op size (one thread: the calling thread).</summary>
    static void ForEachRowPair(int rowPairs, Action<int, int> body) =>
        Native.OpenMpTeam.For(rowPairs, Math.Min(torch.get_num_threads(), Math.Max(1, rowPairs / 64)), body);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first batch: no unoptimised tier
    static void ForwardRowPair(float* top, float* bottom, float* output, int outW)
    {
        // Constants created in the method (not static fields) stay immediates when the method is jitted early.
        var swapPairs = Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6);
        var evenLanes = Vector256.Create(0, 2, 4, 6, 0, 2, 4, 6);
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; 2 * j + 8 <= 2 * outW; j += 4)
            {
                var columnMax = Vector256.Max(Vector256.Load(top + 2 * j), Vector256.Load(bottom + 2 * j));
                var windowMax = Vector256.Max(columnMax, Vector256.Shuffle(columnMax, swapPairs));
                var relu = Vector256.Max(windowMax, Vector256<float>.Zero);
                Vector256.Shuffle(relu, evenLanes).GetLower().Store(output + j);
            }
        }
        for (; j < outW; j++)
        {
            float m = MathF.Max(MathF.Max(top[2 * j], top[2 * j + 1]), MathF.Max(bottom[2 * j], bottom[2 * j + 1]));
            output[j] = MathF.Max(m, 0f);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first batch: no unoptimised tier
    static void BackwardRowPair(float* top, float* bottom, float* grad, float* dTop, float* dBottom, int width, int outW)
    {
        var swapPairs = Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6);
        var duplicateEven = Vector256.Create(0, 0, 2, 2, 4, 4, 6, 6);
        var spread = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);
        var oddLanes = Vector256.Create(0, -1, 0, -1, 0, -1, 0, -1).AsSingle();
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; 2 * j + 8 <= 2 * outW; j += 4)
            {
                var a = Vector256.Load(top + 2 * j);
                var b = Vector256.Load(bottom + 2 * j);
                var columnMax = Vector256.Max(a, b);
                var windowMax = Vector256.Max(columnMax, Vector256.Shuffle(columnMax, swapPairs));
                var four = Vector128.Load(grad + j);
                var g = Vector256.Shuffle(Vector256.Create(four, four), spread) & Vector256.GreaterThan(windowMax, Vector256<float>.Zero);
                var atTop = Vector256.Equals(a, windowMax);
                var atBottom = Vector256.Equals(b, windowMax);
                // The first maximum in row-major order wins: top-left, top-right, bottom-left, bottom-right.
                var takeTop = Vector256.AndNot(atTop, oddLanes & Vector256.Shuffle(atTop, duplicateEven));
                var topHasIt = atTop | Vector256.Shuffle(atTop, swapPairs);
                var takeBottom = Vector256.AndNot(Vector256.AndNot(atBottom, topHasIt), oddLanes & Vector256.Shuffle(atBottom, duplicateEven));
                (g & takeTop).Store(dTop + 2 * j);
                (g & takeBottom).Store(dBottom + 2 * j);
            }
        }
        for (; j < outW; j++)
        {
            int c = 2 * j;
            float m = MathF.Max(MathF.Max(top[c], top[c + 1]), MathF.Max(bottom[c], bottom[c + 1]));
            float g = m > 0f ? grad[j] : 0f;
            dTop[c] = dTop[c + 1] = dBottom[c] = dBottom[c + 1] = 0f;
            if (top[c] == m) dTop[c] = g;
            else if (top[c + 1] == m) dTop[c + 1] = g;
            else if (bottom[c] == m) dBottom[c] = g;
            else if (bottom[c + 1] == m) dBottom[c + 1] = g;
        }
        if (width % 2 == 1) dTop[width - 1] = dBottom[width - 1] = 0f;
    }
}
