namespace FedAvg.Core.Training;

/// <summary>
/// How a client trains locally in one round: SGD for E epochs over batches of B, with FedProx's proximal term
/// μ/2·‖w − w_global‖² added to the loss when <see cref="ProximalMu"/> is above 0 (Li et al. 2020).
/// </summary>
public sealed record TrainConfig(
    int Epochs, int BatchSize, double LearningRate, double Momentum = 0, double WeightDecay = 0, double ProximalMu = 0)
{
    public void Validate()
    {
        Require.AtLeast(Epochs, 1, "epochs");
        Require.AtLeast(BatchSize, 1, "batch");
        Require.Positive(LearningRate, "lr");
        if (!(Momentum >= 0 && Momentum < 1)) throw new UsageException($"momentum must be in [0, 1), got {Momentum}.");
        Require.NonNegative(WeightDecay, "weight-decay");
        Require.NonNegative(ProximalMu, "proximal-mu");
    }
}

/// <summary>What local training produced: the new weights and what the client measured on its own data.</summary>
public sealed record TrainResult(float[] Weights, int SampleCount, double MeanLoss, double Accuracy, TimeSpan Elapsed);

/// <summary>Loss and accuracy of a model on a labelled set.</summary>
public sealed record Evaluation(double Loss, double Accuracy, int Count);
