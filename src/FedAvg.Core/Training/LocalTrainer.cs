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
    public string ModelName { get; }
    public WeightLayout Layout { get; }

    public LocalTrainer(string modelName)
    {
        NativeTuning.Apply();
        ModelName = modelName;
        model = ModelZoo.Create(modelName);
        Layout = WeightLayout.Of(model);
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

        // A fresh optimizer each round: FedAvg's local SGD keeps no state between rounds, and holding
        // momentum buffers per client would make memory grow with clients × model size.
        using var optimizer = torch.optim.SGD(model.parameters(), config.LearningRate,
            momentum: config.Momentum, weight_decay: config.WeightDecay);
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

                optimizer.zero_grad();
                var logits = model.call(inputs);
                var loss = nn.functional.cross_entropy(logits, targets);
                loss.backward();
                optimizer.step();

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
    public Evaluation Evaluate(ReadOnlySpan<float> weights, LabeledImages data, int batchSize = 1000)
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
    public static Evaluation Evaluate(nn.Module<Tensor, Tensor> model, LabeledImages data, int batchSize = 1000)
    {
        Require.AtLeast(batchSize, 1, "batch");
        model.eval();
        using var _ = torch.no_grad();
        double lossSum = 0;
        long correct = 0;
        for (int start = 0; start < data.Count; start += batchSize)
        {
            using var scope = torch.NewDisposeScope();
            int count = Math.Min(batchSize, data.Count - start);
            var inputs = data.Images.narrow(0, start, count);
            var targets = data.Labels.narrow(0, start, count);
            var logits = model.call(inputs);
            lossSum += nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum).item<float>();
            correct += logits.argmax(1).eq(targets).sum().item<long>();
        }
        return new Evaluation(lossSum / data.Count, (double)correct / data.Count, data.Count);
    }
}
