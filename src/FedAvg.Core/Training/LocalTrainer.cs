using System.Diagnostics;
using FedAvg.Core.Data;
using FedAvg.Core.Models;
using FedAvg.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FedAvg.Core.Training;

/// <summary>
/// Trains one model instance on index views of a shared set. A trainer is reused for client after client:
/// the module is the trainer's, not the client's, so memory does not grow with the number of clients.
/// Not thread-safe: one trainer per thread.
/// </summary>
public sealed class LocalTrainer : IDisposable
{
    readonly nn.Module<Tensor, Tensor> model;
    readonly FusedSgd optimizer;
    public string ModelName { get; }
    public WeightLayout Layout { get; }

    public LocalTrainer(string modelName)
    {
        NativeTuning.Apply();
        ModelName = modelName;
        model = ModelZoo.Create(modelName);
        Layout = WeightLayout.Of(model);
        optimizer = new FusedSgd(model.parameters());
    }

    /// <summary>
    /// Starts from <paramref name="globalWeights"/> and runs SGD over the client's samples. Shuffling is seeded by
    /// <paramref name="shuffleSeed"/>, so the same inputs give the same weights bit for bit on the same thread count.
    /// </summary>
    public TrainResult Train(ReadOnlySpan<float> globalWeights, LabeledImages data, int[] indices, TrainConfig config, int shuffleSeed,
        Action<EpochReport>? afterEpoch = null)
    {
        config.Validate();
        if (indices.Length == 0) throw new ArgumentException("a client with no samples cannot train.");
        var clock = Stopwatch.StartNew();
        Weights.Write(model, Layout, globalWeights);

        // Momentum starts afresh each round: FedAvg's local SGD keeps no state between rounds, and holding
        // momentum buffers per client would make memory grow with clients × model size.
        optimizer.Reset();
        var rng = new Random(shuffleSeed);
        var order = (int[])indices.Clone();
        var batchIndices = new long[config.BatchSize];
        double lossSum = 0;
        long correct = 0, seen = 0;

        for (int epoch = 0; epoch < config.Epochs; epoch++)
        {
            model.train();
            Partitioning.Partitioner.Shuffle<int>(order, rng);
            double epochLoss = 0;
            long epochCorrect = 0;
            for (int start = 0; start < order.Length; start += config.BatchSize)
            {
                int count = Math.Min(config.BatchSize, order.Length - start);
                using var scope = torch.NewDisposeScope();
                for (int i = 0; i < count; i++) batchIndices[i] = order[start + i];
                var index = torch.tensor(batchIndices.AsSpan(0, count).ToArray(), ScalarType.Int64);
                var inputs = data.Images.index_select(0, index);
                var targets = data.Labels.index_select(0, index);

                optimizer.ZeroGrad();
                var logits = model.call(inputs);
                var loss = nn.functional.cross_entropy(logits, targets);
                loss.backward();
                optimizer.Step(config.LearningRate, config.Momentum, config.WeightDecay);

                epochLoss += loss.item<float>() * count;
                epochCorrect += logits.argmax(1).eq(targets).sum().item<long>();
            }
            lossSum += epochLoss;
            correct += epochCorrect;
            seen += order.Length;
            afterEpoch?.Invoke(new EpochReport(epoch + 1, epochLoss / order.Length, (double)epochCorrect / order.Length, model));
        }
        var weights = Weights.Read(model, Layout);
        return new TrainResult(weights, indices.Length, lossSum / seen, (double)correct / seen, clock.Elapsed);
    }

    /// <summary>Loss and accuracy of <paramref name="weights"/> on a whole set, in batches, without gradients.</summary>
    public Evaluation Evaluate(ReadOnlySpan<float> weights, LabeledImages data, int batchSize = Evaluator.DefaultBatch)
    {
        Weights.Write(model, Layout, weights);
        return Evaluator.Evaluate(model, data, batchSize);
    }

    /// <summary>The trainer's module with the given weights loaded, e.g. to save it.</summary>
    public nn.Module<Tensor, Tensor> ModuleWith(ReadOnlySpan<float> weights)
    {
        Weights.Write(model, Layout, weights);
        return model;
    }

    public void Dispose() => model.Dispose();
}

/// <summary>One finished local epoch: its mean loss and accuracy on the samples it trained on, and the model as it stands.</summary>
public sealed record EpochReport(int Epoch, double MeanLoss, double Accuracy, nn.Module<Tensor, Tensor> Model);

public static class Evaluator
{
    /// <summary>
    /// Large enough to amortise per-call overhead, small enough that no intermediate buffer (im2col of the
    /// CNNs at batch 1000 is >100 MB) exceeds the mmap threshold and gets mapped and unmapped every batch.
    /// </summary>
    public const int DefaultBatch = 200;

    public static Evaluation Evaluate(nn.Module<Tensor, Tensor> model, LabeledImages data, int batchSize = DefaultBatch) =>
        Combine(data.Count, [EvaluateBatches(model, data, 0, BatchCount(data.Count, batchSize), batchSize)]);

    public static int BatchCount(int samples, int batchSize) => (samples + batchSize - 1) / batchSize;

    /// <summary>Per-batch loss sums and the number of correct predictions over batches [first, first + count).</summary>
    public static PartialEvaluation EvaluateBatches(nn.Module<Tensor, Tensor> model, LabeledImages data, int first, int count, int batchSize)
    {
        Require.AtLeast(batchSize, 1, "batch");
        model.eval();
        using var _ = torch.no_grad();
        var losses = new double[count];
        long correct = 0;
        for (int b = 0; b < count; b++)
        {
            using var scope = torch.NewDisposeScope();
            int start = (first + b) * batchSize;
            int size = Math.Min(batchSize, data.Count - start);
            var inputs = data.Images.narrow(0, start, size);
            var targets = data.Labels.narrow(0, start, size);
            var logits = model.call(inputs);
            losses[b] = nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum).item<float>();
            correct += logits.argmax(1).eq(targets).sum().item<long>();
        }
        return new PartialEvaluation(first, losses, correct);
    }

    /// <summary>
    /// Adds partial evaluations in batch order, so the result is the same bits however the batches were spread
    /// over trainers.
    /// </summary>
    public static Evaluation Combine(int samples, IEnumerable<PartialEvaluation> parts)
    {
        double loss = 0;
        long correct = 0;
        foreach (var part in parts.OrderBy(p => p.FirstBatch))
        {
            foreach (var l in part.BatchLossSums) loss += l;
            correct += part.Correct;
        }
        return new Evaluation(loss / samples, (double)correct / samples, samples);
    }
}

public sealed record PartialEvaluation(int FirstBatch, double[] BatchLossSums, long Correct);
