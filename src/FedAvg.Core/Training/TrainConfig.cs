namespace FedAvg.Core.Training;

/// <summary>How a client trains locally in one round: plain SGD for E epochs over batches of B.</summary>
public sealed record TrainConfig(
    int Epochs, int BatchSize, double LearningRate, double Momentum = 0, double WeightDecay = 0)
{
    public void Validate()
    {
        Require.AtLeast(Epochs, 1, "epochs");
        Require.AtLeast(BatchSize, 1, "batch");
        Require.Positive(LearningRate, "lr");
        if (!(Momentum >= 0 && Momentum < 1)) throw new UsageException($"momentum must be in [0, 1), got {Momentum}.");
        Require.NonNegative(WeightDecay, "weight-decay");
    }
}

/// <summary>What local training produced: the new weights and what the client measured on its own data.</summary>
public sealed record TrainResult(float[] Weights, int SampleCount, double MeanLoss, double Accuracy, TimeSpan Elapsed);

/// <summary>Loss and accuracy of a model on a labelled set.</summary>
public sealed record Evaluation(double Loss, double Accuracy, int Count);
