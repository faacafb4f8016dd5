using FedAvg.Core.Models;
using FedAvg.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace FedAvg.Core.Tests;

/// <summary>The hand-written kernels against the libtorch operations they replace, bit for bit.</summary>
public class KernelTests
{
    static Tensor Reference(Tensor x) => nn.functional.max_pool2d(nn.functional.relu(x), 2);

    public static TheoryData<long[], bool> PoolShapes => new()
    {
        // the seeds' activations (even and odd sizes), sizes below one vector, the smallest window, an odd last row
        { [3, 4, 26, 26], false }, { [3, 4, 26, 26], true }, { [2, 5, 11, 11], false }, { [2, 5, 11, 11], true },
        { [2, 3, 28, 28], true }, { [1, 2, 7, 9], true }, { [2, 2, 2, 2], false }, { [2, 3, 3, 17], true },
    };

    [Theory]
    [MemberData(nameof(PoolShapes))]
    public void ReluMaxPool_equals_relu_then_max_pool_in_values_and_gradients(long[] shape, bool ties)
    {
        using var scope = NewDisposeScope();
        var generator = new torch.Generator(42);
        // Small integers make ties (and exact zeros) common, which is where the gradient's routing could differ.
        var x = ties ? randint(-3, 4, shape, generator: generator).to(ScalarType.Float32) : randn(shape, generator: generator);
        var expectedInput = x.clone().requires_grad_();
        var expected = Reference(expectedInput);
        var upstream = randn(expected.shape, generator: generator);
        expected.backward([upstream]);

        var actualInput = x.clone().requires_grad_();
        using var pool = new ReluMaxPool2d();
        var actual = pool.call(actualInput);
        actual.backward([upstream]);

        Assert.Equal(expected.shape, actual.shape);
        Assert.True(expected.eq(actual).all().item<bool>(), "forward values differ");
        Assert.True(expectedInput.grad!.eq(actualInput.grad!).all().item<bool>(), "input gradients differ");
    }

    [Fact]
    public void ReluMaxPool_is_the_same_on_two_threads()
    {
        using var scope = NewDisposeScope();
        var x = randn([8, 16, 26, 26], generator: new torch.Generator(3));
        using var pool = new ReluMaxPool2d();
        var one = pool.call(x);
        var two = OnThreads(2, () => pool.call(x));
        Assert.True(one.eq(two).all().item<bool>());
    }

    [Fact]
    public void ReluMaxPool_propagates_NaN_like_libtorch()
    {
        using var scope = NewDisposeScope();
        var x = randn([1, 1, 4, 20], generator: new torch.Generator(9));
        x[0, 0, 1, 3] = float.NaN;  // in the vector part
        x[0, 0, 2, 17] = float.NaN; // in the scalar tail
        using var pool = new ReluMaxPool2d();
        var actual = pool.call(x);
        Assert.Equal(2, actual.isnan().sum().item<long>());
        Assert.True(actual.isnan().eq(Reference(x).isnan()).all().item<bool>());
    }

    [Fact]
    public void ReluMaxPool_refuses_what_it_cannot_pool()
    {
        using var pool = new ReluMaxPool2d();
        Assert.Contains("[N,C,H,W]", Assert.Throws<ArgumentException>(() => pool.call(zeros(4, 4))).Message);
        Assert.Contains("float32", Assert.Throws<ArgumentException>(() => pool.call(zeros([1, 1, 4, 4], ScalarType.Float64))).Message);
        Assert.Contains("at least 2", Assert.Throws<ArgumentException>(() => pool.call(zeros(1, 1, 1, 4))).Message);
    }

    [Theory]
    [InlineData("seed001-2nn", 0.0, 0.0)]
    [InlineData("seed001-2nn", 0.9, 0.0)]
    [InlineData("seed001-2nn", 0.9, 1e-3)]
    [InlineData("seed000-cnn", 0.0, 5e-4)]
    [InlineData("seed000-cnn", 0.5, 0.0)]
    public void FusedSgd_gives_torch_optim_SGDs_weights_bit_for_bit(string model, double momentum, double weightDecay) =>
        // One intra-op thread: libtorch 2.10's conv backward at two threads sometimes returns NaN gradients here
        // (docs/benchmark-notes.md), whichever optimizer follows it.
        OnThreads(1, () => TrainBoth(model, momentum, weightDecay));

    static bool TrainBoth(string model, double momentum, double weightDecay)
    {
        using var reference = ModelZoo.Create(model, 7);
        using var fused = ModelZoo.Create(model, 7);
        var optimizer = new FusedSgd(fused.parameters());
        var generator = new torch.Generator(5);
        for (int round = 0; round < 2; round++)
        {
            // Each round starts momentum afresh, as a new torch.optim.SGD does.
            using var sgd = torch.optim.SGD(reference.parameters(), 0.05, momentum: momentum, weight_decay: weightDecay);
            optimizer.Reset();
            for (int step = 0; step < 4; step++)
            {
                using var scope = NewDisposeScope();
                var x = randn([16, 1, 28, 28], generator: generator);
                var y = randint(0, 10, [16], generator: generator);
                sgd.zero_grad();
                nn.functional.cross_entropy(reference.call(x), y).backward();
                sgd.step();
                optimizer.ZeroGrad();
                nn.functional.cross_entropy(fused.call(x), y).backward();
                optimizer.Step(0.05, momentum, weightDecay);
            }
        }
        var layout = WeightLayout.Of(reference);
        Assert.Equal(Weights.Read(reference, layout), Weights.Read(fused, layout));
        return true;
    }

    [Fact]
    public void FusedSgd_update_matches_its_formula_on_the_vector_part_and_the_tail()
    {
        const int n = 19; // two vectors of 8 and a tail of 3
        var w = Enumerable.Range(0, n).Select(i => 1f + i / 8f).ToArray();
        var g = Enumerable.Range(0, n).Select(i => 0.5f - i / 16f).ToArray();
        var v = Enumerable.Range(0, n).Select(i => i / 4f).ToArray();
        var expectedW = new float[n];
        var expectedV = new float[n];
        for (int i = 0; i < n; i++)
        {
            float d = MathF.FusedMultiplyAdd(w[i], 0.01f, g[i]);
            expectedV[i] = v[i] * 0.9f + d;
            expectedW[i] = MathF.FusedMultiplyAdd(expectedV[i], -0.1f, w[i]);
        }
        FusedSgd.Update(w, g, v, 0.1f, 0.9f, 0.01f, hasVelocity: true);
        Assert.Equal(expectedW, w);
        Assert.Equal(expectedV, v);
    }

    [Fact]
    public void FusedSgd_proximal_update_matches_its_formula_on_the_vector_part_and_the_tail()
    {
        const int n = 19; // two vectors of 8 and a tail of 3
        var w = Enumerable.Range(0, n).Select(i => 1f + i / 8f).ToArray();
        var g = Enumerable.Range(0, n).Select(i => 0.5f - i / 16f).ToArray();
        var v = Enumerable.Range(0, n).Select(i => i / 4f).ToArray();
        var global = Enumerable.Range(0, n).Select(i => 1f - i / 32f).ToArray();
        var expectedW = new float[n];
        var expectedV = new float[n];
        for (int i = 0; i < n; i++)
        {
            float prox = MathF.FusedMultiplyAdd(w[i] - global[i], 0.5f, g[i]); // g + μ·(w − w_global)
            float d = MathF.FusedMultiplyAdd(w[i], 0.01f, prox);               // + decay·w
            expectedV[i] = v[i] * 0.9f + d;
            expectedW[i] = MathF.FusedMultiplyAdd(expectedV[i], -0.1f, w[i]);
        }
        FusedSgd.Update(w, g, v, 0.1f, 0.9f, 0.01f, hasVelocity: true, global, 0.5f);
        Assert.Equal(expectedW, w);
        Assert.Equal(expectedV, v);

        // one hand-computed coordinate: w = 2, g = 0.25, w_global = 1.5, μ = 0.5, lr = 0.1, no momentum or decay:
        // g' = 0.25 + 0.5·0.5 = 0.5, w = 2 − 0.05 = 1.95
        float[] one = [2f], none = [0f];
        FusedSgd.Update(one, [0.25f], none, 0.1f, 0f, 0f, hasVelocity: false, [1.5f], 0.5f);
        Assert.Equal(1.95f, one[0]);
    }

    [Fact]
    public void FusedSgd_with_a_proximal_term_follows_libtorch_autograd_of_the_fedprox_loss_and_torch_optim_SGD() =>
        OnThreads(1, () =>
        {
            const double mu = 0.5, lr = 0.05, momentum = 0.9, decay = 1e-3;
            using var reference = ModelZoo.Create("seed001-2nn", 7);
            using var fused = ModelZoo.Create("seed001-2nn", 7);
            using var plain = ModelZoo.Create("seed001-2nn", 7);
            var global = reference.parameters().Select(p => p.detach().clone()).ToArray();
            var optimizer = new FusedSgd(fused.parameters());
            var plainOptimizer = new FusedSgd(plain.parameters());
            optimizer.SetAnchor();
            using var sgd = torch.optim.SGD(reference.parameters(), lr, momentum: momentum, weight_decay: decay);
            var generator = new torch.Generator(5);
            var layout = WeightLayout.Of(reference);
            for (int step = 0; step < 4; step++)
            {
                using var scope = NewDisposeScope();
                var x = randn([16, 1, 28, 28], generator: generator);
                var y = randint(0, 10, [16], generator: generator);
                sgd.zero_grad();
                var proximal = reference.parameters().Zip(global).Select(p => (p.First - p.Second).pow(2).sum()).Aggregate((a, b) => a + b);
                (nn.functional.cross_entropy(reference.call(x), y) + proximal * (mu / 2)).backward();
                sgd.step();
                optimizer.ZeroGrad();
                nn.functional.cross_entropy(fused.call(x), y).backward();
                optimizer.Step(lr, momentum, decay, mu);
                plainOptimizer.ZeroGrad();
                nn.functional.cross_entropy(plain.call(x), y).backward();
                plainOptimizer.Step(lr, momentum, decay);
                if (step == 0) // w = w_global before the first step: the proximal term adds exactly nothing
                    Assert.Equal(Weights.Read(plain, layout), Weights.Read(fused, layout));
            }
            var expected = Weights.Read(reference, layout);
            var actual = Weights.Read(fused, layout);
            var without = Weights.Read(plain, layout);
            double maxError = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
            double effect = expected.Zip(without).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(maxError <= 1e-6, $"max difference from libtorch {maxError:G3}");
            Assert.True(effect > 100 * maxError, $"the proximal term moved weights by {effect:G3}, the error is {maxError:G3}");
            return true;
        });

    static T OnThreads<T>(int threads, Func<T> work)
    {
        T? result = default;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            torch.set_num_threads(threads);
            try { result = work(); }
            catch (Exception e) { failure = e; }
        });
        thread.Start();
        thread.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return result!;
    }
}

public class OpenMpTeamTests
{
    [Fact]
    public void Loops_run_on_libtorchs_OpenMP_team_cover_every_index_once_and_rethrow()
    {
        Assert.NotNull(Native.OpenMpTeam.Library);
        var hits = new int[1000];
        var threadIds = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        Exception? thrown = null;
        var thread = new Thread(() =>
        {
            Native.NativeTuning.SetIntraOpThreads(2);
            Native.OpenMpTeam.For(hits.Length, 2, (first, end) =>
            {
                threadIds[Environment.CurrentManagedThreadId] = true;
                for (int i = first; i < end; i++) Interlocked.Increment(ref hits[i]);
            });
            try
            {
                Native.OpenMpTeam.For(10, 2, (first, _) => { if (first > 0) throw new InvalidOperationException("from the second thread"); });
            }
            catch (Exception e) { thrown = e; }
        });
        thread.Start();
        thread.Join();
        Assert.All(hits, h => Assert.Equal(1, h));
        Assert.Equal(2, threadIds.Count);
        Assert.Equal("from the second thread", Assert.IsType<InvalidOperationException>(thrown).Message);
    }
}

/// <summary>MKL's kernel choice (MklDispatch): taken where it applies, and its products still right.</summary>
public class MklDispatchTests
{
    [Fact]
    public void On_an_AMD_CPU_with_AVX2_MKL_chooses_its_kernels_by_CPU_features()
    {
        using var model = ModelZoo.Create("seed001-2nn"); // applies the process-wide settings
        var (_, ebx, ecx, edx) = System.Runtime.Intrinsics.X86.X86Base.IsSupported
            ? System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0) : default;
        var amd = (ebx, edx, ecx) == (0x68747541, 0x69746E65, 0x444D4163); // "Auth" "enti" "cAMD"
        var applies = amd && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported
                      && Native.NativeTuning.Settings.MklByCpuFeatures;
        Assert.True(applies == Native.MklDispatch.ByCpuFeatures, Native.MklDispatch.Status);
    }

    [Theory]
    [InlineData(64, 784, 200)] // seed001-2nn's first layer at B=64
    [InlineData(33, 1600, 128)] // seed002-cnn's fc1 at an odd batch
    [InlineData(7, 200, 10)]
    public void Linear_forward_and_gradients_match_a_double_precision_product(int batch, int inputs, int outputs)
    {
        using var model = ModelZoo.Create("seed001-2nn"); // the dispatch is set before the first product
        using var scope = NewDisposeScope();
        var generator = new torch.Generator(7);
        var x = randn([batch, inputs], generator: generator);
        var w = randn([outputs, inputs], generator: generator).mul_(0.05).requires_grad_();
        var upstream = randn([batch, outputs], generator: generator);
        var y = nn.functional.linear(x, w);
        y.backward([upstream]);

        var xd = x.to(ScalarType.Float64);
        var expectedY = xd.matmul(w.detach().to(ScalarType.Float64).t());
        var expectedGrad = upstream.to(ScalarType.Float64).t().matmul(xd);
        AssertClose(expectedY, y.to(ScalarType.Float64), "forward");
        AssertClose(expectedGrad, w.grad!.to(ScalarType.Float64), "weight gradient");
    }

    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        // float32 products of a few hundred to 1,600 terms: relative to the scale of the values, 1e-4 is generous
        // for a right kernel and far below what a wrong one (a dropped tile, a transposed panel) produces.
        var scale = expected.abs().max().item<double>();
        var error = (expected - actual).abs().max().item<double>();
        Assert.True(error <= 1e-4 * scale, $"{what}: max error {error:G3} at scale {scale:G3}");
    }
}

/// <summary>The FEDAVG_* switches: defaults, their one alternative, and a clear refusal of anything else.</summary>
public class NativeSettingsTests
{
    static Native.NativeSettings Parse(params (string Name, string Value)[] set) =>
        Native.NativeSettings.Parse(name => set.FirstOrDefault(v => v.Name == name).Value);

    [Fact]
    public void Unset_or_empty_means_the_defaults_and_each_alternative_turns_one_off()
    {
        Assert.Equal(Native.NativeSettings.Default, Parse());
        Assert.Equal(Native.NativeSettings.Default, Parse(("FEDAVG_MKL_DISPATCH", ""), ("FEDAVG_MALLOC_TUNING", "ON")));
        Assert.Equal(new Native.NativeSettings(false, true, true), Parse(("FEDAVG_MALLOC_TUNING", "off")));
        Assert.Equal(new Native.NativeSettings(true, false, true), Parse(("FEDAVG_BLAS_THREADS", "Intra-Op")));
        Assert.Equal(new Native.NativeSettings(true, true, false), Parse(("FEDAVG_MKL_DISPATCH", "vendor")));
    }

    [Theory]
    [InlineData("FEDAVG_MALLOC_TUNING", "no")]
    [InlineData("FEDAVG_BLAS_THREADS", "2")]
    [InlineData("FEDAVG_MKL_DISPATCH", "intel")]
    public void Any_other_value_is_refused_with_the_variable_and_what_it_takes(string name, string value)
    {
        var error = Assert.Throws<UsageException>(() => Parse((name, value)));
        Assert.Contains(name, error.Message);
        Assert.Contains($"'{value}'", error.Message);
    }
}
