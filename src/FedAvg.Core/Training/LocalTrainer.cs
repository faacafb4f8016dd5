using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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
    BatchBuffer? batchBuffer;
    public string ModelName { get; }
    public WeightLayout Layout { get; }

    public LocalTrainer(string modelName)
    {
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
        foreach (var index in indices)
            if ((uint)index >= (uint)data.Count)
                throw new ArgumentOutOfRangeException(nameof(indices), $"sample index {index} is outside the set of {data.Count}.");
        var clock = Stopwatch.StartNew();
        Weights.Write(model, Layout, globalWeights);

        // Momentum starts afresh each round: FedAvg's local SGD keeps no state between rounds, and holding
        // momentum buffers per client would make memory grow with clients × model size.
        optimizer.Reset();
        if (config.ProximalMu != 0) optimizer.SetAnchor(); // FedProx: w_global is what was just written
        else optimizer.ClearAnchor();
        var rng = new Random(shuffleSeed);
        var order = (int[])indices.Clone();
        var batch = BatchBuffers(data, config.BatchSize);
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
                var (inputs, targets) = batch.Fill(data, order.AsSpan(start, count));

                optimizer.ZeroGrad();
                var logits = model.call(inputs);
                var loss = nn.functional.cross_entropy(logits, targets);
                loss.backward();
                optimizer.Step(config.LearningRate, config.Momentum, config.WeightDecay, config.ProximalMu);

                epochLoss += loss.item<float>() * count;
                epochCorrect += batch.CountCorrect(logits);
            }
            lossSum += epochLoss;
            correct += epochCorrect;
            seen += order.Length;
            afterEpoch?.Invoke(new EpochReport(epoch + 1, epochLoss / order.Length, (double)epochCorrect / order.Length, model));
        }
        var weights = WeightBuffers.Rent(Layout.TotalLength); // returned by the aggregation once folded
        Weights.ReadInto(model, Layout, weights);
        return new TrainResult(weights, indices.Length, lossSum / seen, (double)correct / seen, clock.Elapsed);
    }

    BatchBuffer BatchBuffers(LabeledImages data, int batchSize)
    {
        if (batchBuffer is null || !batchBuffer.Fits(data, batchSize))
        {
            batchBuffer?.Dispose();
            batchBuffer = new BatchBuffer(data, batchSize);
        }
        return batchBuffer;
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

    public void Dispose()
    {
        batchBuffer?.Dispose();
        model.Dispose();
    }
}

/// <summary>
/// One batch's inputs and targets, gathered from the shared set by plain memory copies into tensors the trainer
/// reuses, instead of an index tensor and two index_select calls per step. Reuse is safe: autograd has released
/// everything it saved from a batch once that batch's backward has run.
/// </summary>
public sealed class BatchBuffer : IDisposable
{
    readonly Tensor inputs, targets;
    readonly long[] sampleShape;
    readonly int sampleLength;

    public BatchBuffer(LabeledImages data, int batchSize)
    {
        if (data.Images.dtype != ScalarType.Float32 || !data.Images.is_contiguous())
            throw new ArgumentException("training images must be one contiguous float32 tensor.");
        sampleShape = data.Images.shape[1..];
        sampleLength = checked((int)sampleShape.Aggregate(1L, (a, b) => a * b));
        inputs = torch.empty([batchSize, .. sampleShape], ScalarType.Float32);
        targets = torch.empty([batchSize], ScalarType.Int64);
        BatchSize = batchSize;
    }

    public int BatchSize { get; }

    public bool Fits(LabeledImages data, int batchSize) => batchSize == BatchSize && data.Images.shape[1..].SequenceEqual(sampleShape);

    /// <summary>The batch of <paramref name="samples"/>; views of the buffers, owned by the caller's dispose scope.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first batch: no unoptimised tier
    public (Tensor Inputs, Tensor Targets) Fill(LabeledImages data, ReadOnlySpan<int> samples)
    {
        var images = MemoryMarshal.Cast<byte, float>(data.Images.bytes);
        var input = MemoryMarshal.Cast<byte, float>(inputs.bytes);
        var target = MemoryMarshal.Cast<byte, long>(targets.bytes);
        var labels = data.LabelValues;
        for (int i = 0; i < samples.Length; i++)
        {
            int sample = samples[i];
            images.Slice(sample * sampleLength, sampleLength).CopyTo(input.Slice(i * sampleLength, sampleLength));
            target[i] = labels[sample];
        }
        return samples.Length == BatchSize
            ? (inputs.alias(), targets.alias())
            : (inputs.narrow(0, 0, samples.Length), targets.narrow(0, 0, samples.Length));
    }

    /// <summary>How many rows of <paramref name="logits"/> (one per sample of the last <see cref="Fill"/>) have their
    /// first maximum at that sample's target, as argmax decides.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first batch: no unoptimised tier
    public long CountCorrect(Tensor logits)
    {
        using var contiguous = logits.is_contiguous() ? null : logits.contiguous();
        var values = MemoryMarshal.Cast<byte, float>((contiguous ?? logits).bytes);
        var target = MemoryMarshal.Cast<byte, long>(targets.bytes);
        int rows = (int)logits.shape[0], classes = (int)logits.shape[1];
        long correct = 0;
        for (int i = 0; i < rows; i++)
        {
            var row = values.Slice(i * classes, classes);
            int best = 0;
            for (int c = 1; c < classes && !float.IsNaN(row[best]); c++)
                if (row[c] > row[best] || float.IsNaN(row[c])) best = c;
            if (best == target[i]) correct++;
        }
        return correct;
    }

    public void Dispose()
    {
        inputs.Dispose();
        targets.Dispose();
    }
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
