using TorchSharp;
using FedAvg.Core.Models;
using FedAvg.Core.Partitioning;
using FedAvg.Core.Training;
using FedAvg.Tests.Shared;

namespace FedAvg.Core.Tests;

public class TrainingTests
{
    static float[] Initial(string model, long seed = 1)
    {
        using var m = ModelZoo.Create(model, seed);
        return Weights.Read(m, WeightLayout.Of(m));
    }

    [Fact]
    public void Local_training_on_real_mnist_beats_the_untrained_model_by_far()
    {
        using var trainer = new LocalTrainer("seed001-2nn");
        var start = Initial("seed001-2nn");
        var test = TestData.MnistTest.Take(2000);
        var before = trainer.Evaluate(start, test);
        var indices = Partitioner.Parse("iid").Split(TestData.MnistTrain.LabelValues, 10, 20, 1)[0]; // 3000 samples
        var result = trainer.Train(start, TestData.MnistTrain, indices, new TrainConfig(3, 32, 0.05, 0.5), 11);
        var after = trainer.Evaluate(result.Weights, test);

        Assert.Equal(3000, result.SampleCount);
        Assert.InRange(before.Accuracy, 0.0, 0.3);
        Assert.True(after.Accuracy > 0.8, $"accuracy after three local epochs: {after.Accuracy}");
        Assert.True(after.Loss < before.Loss / 3, $"loss {before.Loss} → {after.Loss}");
        Assert.InRange(result.Accuracy, 0.5, 1.0);
        Assert.Equal(2000, after.Count);
    }

    [Fact]
    public void Same_inputs_and_seed_give_bit_identical_weights_and_another_seed_does_not()
    {
        using var trainer = new LocalTrainer("seed002-cnn");
        var start = Initial("seed002-cnn");
        var indices = Enumerable.Range(0, 256).ToArray();
        var config = new TrainConfig(1, 64, 0.01, 0.9);
        var a = trainer.Train(start, TestData.MnistTrain, indices, config, 3);
        var b = trainer.Train(start, TestData.MnistTrain, indices, config, 3);
        var c = trainer.Train(start, TestData.MnistTrain, indices, config, 4);
        Assert.Equal(a.Weights, b.Weights);
        Assert.NotEqual(a.Weights, c.Weights);
        Assert.NotEqual(start, a.Weights);
    }

    [Fact]
    public void A_proximal_mu_pulls_the_trained_weights_towards_the_global_ones_and_zero_changes_nothing()
    {
        // One intra-op thread of its own: under the load of parallel tests a two-thread team can split a reduction
        // differently from one call to the next, and the μ = 0 comparison below is bit for bit.
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                Native.NativeTuning.SetIntraOpThreads(1);
                using var trainer = new LocalTrainer("seed001-2nn");
                var start = Initial("seed001-2nn");
                var indices = Enumerable.Range(0, 512).ToArray();
                double Distance(float[] w) => Math.Sqrt(w.Zip(start).Sum(p => (double)(p.First - p.Second) * (p.First - p.Second)));
                float[] Train(TrainConfig c) => trainer.Train(start, TestData.MnistTrain, indices, c, 7).Weights.ToArray();
                var plain = Train(new TrainConfig(2, 32, 0.05, 0.5));
                var zero = Train(new TrainConfig(2, 32, 0.05, 0.5, ProximalMu: 0));
                var pulled = Train(new TrainConfig(2, 32, 0.05, 0.5, ProximalMu: 1.0));
                var strong = Train(new TrainConfig(2, 32, 0.05, 0.5, ProximalMu: 5.0));
                var plainAgain = Train(new TrainConfig(2, 32, 0.05, 0.5)); // the anchor is forgotten when μ goes back to 0
                Assert.Equal(plain, zero);
                Assert.Equal(plain, plainAgain);
                Assert.True(Distance(pulled) < 0.9 * Distance(plain), $"‖w − w_global‖: μ = 0 {Distance(plain):G4}, μ = 1 {Distance(pulled):G4}");
                Assert.True(Distance(strong) < Distance(pulled), $"μ = 1 {Distance(pulled):G4}, μ = 5 {Distance(strong):G4}");
            }
            catch (Exception e) { failure = e; }
        });
        thread.Start();
        thread.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    [Fact]
    public void Epoch_reports_arrive_once_per_epoch()
    {
        using var trainer = new LocalTrainer("seed001-2nn");
        var epochs = new List<int>();
        trainer.Train(Initial("seed001-2nn"), TestData.MnistTrain, Enumerable.Range(0, 100).ToArray(),
            new TrainConfig(3, 10, 0.01), 1, r => epochs.Add(r.Epoch));
        Assert.Equal([1, 2, 3], epochs);
    }

    [Theory]
    [InlineData(0, 32, 0.01, 0.0, "epochs")]
    [InlineData(1, 0, 0.01, 0.0, "batch")]
    [InlineData(1, 32, 0.0, 0.0, "lr")]
    [InlineData(1, 32, -0.1, 0.0, "lr")]
    [InlineData(1, 32, 0.01, 1.0, "momentum")]
    [InlineData(1, 32, 0.01, 0.0, "proximal-mu", -0.5)]
    public void Impossible_training_numbers_are_refused_before_any_work(int epochs, int batch, double lr, double momentum, string option, double mu = 0)
    {
        var e = Assert.Throws<UsageException>(() => new TrainConfig(epochs, batch, lr, momentum, ProximalMu: mu).Validate());
        Assert.StartsWith(option, e.Message);
    }

    [Fact]
    public void Evaluation_counts_every_sample_in_batches_of_any_size()
    {
        using var trainer = new LocalTrainer("seed000-cnn");
        var w = Initial("seed000-cnn");
        var set = TestData.MnistTest.Take(1234);
        var whole = trainer.Evaluate(w, set, 5000);
        var batched = trainer.Evaluate(w, set, 100);
        Assert.Equal(whole.Accuracy, batched.Accuracy, 10);
        Assert.Equal(whole.Loss, batched.Loss, 4);
        Assert.Equal(1234, batched.Count);
    }
}

public class TrainerPoolTests
{
    [Fact]
    public async Task Pool_evaluation_spread_over_trainers_gives_the_same_bits_as_one_trainer()
    {
        using var model = FedAvg.Core.Models.ModelZoo.Create("seed000-cnn", 2);
        var weights = FedAvg.Core.Models.Weights.Read(model, FedAvg.Core.Models.WeightLayout.Of(model));
        var set = TestData.MnistTest.Take(2345);
        var single = FedAvg.Core.Training.Evaluator.Evaluate(model, set, 100);
        using var one = new TrainerPool("seed000-cnn", 1, 1);
        using var three = new TrainerPool("seed000-cnn", 3, 1);
        Assert.Equal(single, await one.Evaluate(weights, set, 100));
        Assert.Equal(single, await three.Evaluate(weights, set, 100));
    }

    [Fact]
    public async Task Concurrent_trainings_on_a_pool_match_sequential_ones_bit_for_bit()
    {
        using var model = FedAvg.Core.Models.ModelZoo.Create("seed001-2nn", 2);
        var weights = FedAvg.Core.Models.Weights.Read(model, FedAvg.Core.Models.WeightLayout.Of(model));
        var config = new TrainConfig(1, 16, 0.05, 0.9);
        var shards = Enumerable.Range(0, 4).Select(k => Enumerable.Range(k * 300, 300).ToArray()).ToArray();
        using var serial = new TrainerPool("seed001-2nn", 1, 1);
        using var parallel = new TrainerPool("seed001-2nn", 2, 1);
        var a = await Task.WhenAll(shards.Select((s, k) => serial.Train(weights, TestData.MnistTrain, s, config, k)));
        var b = await Task.WhenAll(shards.Select((s, k) => parallel.Train(weights, TestData.MnistTrain, s, config, k)));
        for (int k = 0; k < shards.Length; k++) Assert.Equal(a[k].Weights, b[k].Weights);
        Assert.True(parallel.BusyTime > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_job_that_throws_faults_its_task_and_the_pool_keeps_working()
    {
        using var pool = new TrainerPool("seed001-2nn", 1, 1);
        await Assert.ThrowsAsync<InvalidOperationException>(() => pool.Submit<int>(_ => throw new InvalidOperationException("bad job")));
        Assert.Equal(42, await pool.Submit(_ => 42));
    }

    [Fact]
    public void Two_intra_op_threads_keep_MKL_on_one_and_training_still_works()
    {
        Exception? failure = null;
        bool singleThreaded = false;
        float[]? weights = null;
        var thread = new Thread(() =>
        {
            try
            {
                Native.NativeTuning.SetIntraOpThreads(2);
                singleThreaded = Native.NativeTuning.BlasSingleThreaded;
                var data = TestData.MnistTrain;
                using var trainer = new LocalTrainer("seed001-2nn");
                using var model = Models.ModelZoo.Create("seed001-2nn", 1);
                var start = Models.Weights.Read(model, trainer.Layout);
                weights = trainer.Train(start, data, Enumerable.Range(0, 256).ToArray(), new TrainConfig(1, 32, 0.05), 1).Weights;
            }
            catch (Exception e) { failure = e; }
        });
        thread.Start();
        thread.Join();
        Assert.Null(failure);
        Assert.True(singleThreaded, "MKL_Set_Num_Threads_Local was not found in libtorch_cpu.so");
        Assert.All(weights!, w => Assert.True(float.IsFinite(w)));
    }

    [Fact]
    public void Batch_buffer_gathers_what_index_select_gathers_and_counts_what_argmax_counts()
    {
        var data = TestData.MnistTrain;
        using var buffer = new BatchBuffer(data, 8);
        foreach (var samples in new[] { new[] { 5, 59_999, 0, 17, 17, 3, 42, 1000 }, new[] { 7, 2, 9 } })
        {
            using var scope = torch.NewDisposeScope();
            var (inputs, targets) = buffer.Fill(data, samples);
            var index = torch.tensor(samples.Select(i => (long)i).ToArray());
            Assert.True(inputs.eq(data.Images.index_select(0, index)).all().item<bool>());
            Assert.True(targets.eq(data.Labels.index_select(0, index)).all().item<bool>());

            // Small integers tie often; a NaN row must pick its first NaN, as argmax does.
            // (a generator of its own: the global one is ModelZoo.Create's, behind its lock)
            var logits = torch.randint(0, 3, [samples.Length, 10], generator: new torch.Generator(4)).to(torch.float32);
            logits[1, 4] = float.NaN;
            logits[1, 6] = float.NaN;
            long expected = logits.argmax(1).eq(targets).sum().item<long>();
            Assert.Equal(expected, buffer.CountCorrect(logits));
        }
    }

    [Fact]
    public void A_sample_index_outside_the_set_is_refused_with_its_value()
    {
        using var trainer = new LocalTrainer("seed001-2nn");
        var weights = new float[trainer.Layout.TotalLength];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            trainer.Train(weights, TestData.MnistTest, [0, 10_000], new TrainConfig(1, 32, 0.01), 1));
        Assert.Contains("10000", e.Message);
    }

    [Fact]
    public async Task The_pool_runs_training_in_round_then_client_order_and_other_work_first()
    {
        using var pool = new TrainerPool("seed000-cnn", 1, 1);
        using var release = new ManualResetEventSlim();
        var started = new TaskCompletionSource();
        var blocker = pool.Submit(_ => { started.SetResult(); release.Wait(); return "blocker"; });
        await started.Task; // the only trainer is busy: everything below queues
        var ran = new System.Collections.Concurrent.ConcurrentQueue<string>();
        Task<string> Job(string name, TrainingOrder? order) => pool.Submit(_ => { ran.Enqueue(name); return name; }, order);
        var jobs = new[]
        {
            Job("r2 client-000", new TrainingOrder(2, "client-000")),
            Job("r1 client-010", new TrainingOrder(1, "client-010")),
            Job("evaluate", null),
            Job("r1 client-002", new TrainingOrder(1, "client-002")),
            Job("r1 client-002 again", new TrainingOrder(1, "client-002")),
        };
        release.Set();
        await Task.WhenAll(jobs.Append(blocker));
        Assert.Equal(["evaluate", "r1 client-002", "r1 client-002 again", "r1 client-010", "r2 client-000"], ran.ToArray());
    }
}

