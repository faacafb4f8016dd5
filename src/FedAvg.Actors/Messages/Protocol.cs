using FedAvg.Core.Training;

namespace FedAvg.Actors.Messages;

/// <summary>
/// Marks every message of the federation protocol. Bound to <see cref="Serialization.FedAvgSerializer"/> in
/// hocon/simulation.conf, so nothing that crosses between server and clients relies on shared memory.
/// </summary>
public interface IFedAvgMessage;

/// <summary>A client is up and ready to train on its <paramref name="SampleCount"/> samples (sent again after a restart).</summary>
public sealed record ClientAvailable(string ClientId, int SampleCount) : IFedAvgMessage;

/// <summary>The server asks a sampled client to train round <paramref name="Round"/> from <paramref name="GlobalWeights"/>.</summary>
/// <remarks>Receivers must treat <paramref name="GlobalWeights"/> as read-only: in one process the same array goes to every client.</remarks>
public sealed record TrainRound(int Round, float[] GlobalWeights, TrainConfig Config, int ShuffleSeed) : IFedAvgMessage;

/// <summary>A client finished training <paramref name="Round"/> and submits its weights.</summary>
public sealed record UpdateSubmitted(
    int Round, string ClientId, float[] Weights, int SampleCount, double TrainLoss, double TrainAccuracy, double TrainSeconds) : IFedAvgMessage;

/// <summary>A client could not train <paramref name="Round"/> (it threw; it is being restarted).</summary>
public sealed record TrainingFailed(int Round, string ClientId, string Reason) : IFedAvgMessage;

/// <summary>What one round did and measured.</summary>
public sealed record RoundMetrics(
    int Round, int Sampled, int Succeeded, int Failed, int Attempts,
    double TestLoss, double TestAccuracy, double MeanTrainLoss,
    double TrainingSeconds, double TrainerBusySeconds, double AggregationSeconds, double EvaluationSeconds, double RoundSeconds);

/// <summary>The server closed a round: the global model moved on.</summary>
public sealed record RoundCompleted(RoundMetrics Metrics) : IFedAvgMessage;

/// <summary>The run ended normally, after the last round or on reaching the target accuracy.</summary>
public sealed record RunCompleted(int Rounds, double FinalAccuracy, int? TargetReachedAtRound, float[] FinalWeights) : IFedAvgMessage;

/// <summary>The run stopped before its end, for the reason given.</summary>
public sealed record RunFailed(int Round, string Reason) : IFedAvgMessage;
