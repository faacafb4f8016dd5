using FedAvg.Core.Training;

namespace FedAvg.Actors.Client;

/// <summary>
/// How a client's round of local training gets done, off the actor's thread. The real one runs on a
/// <see cref="TrainerPool"/>; the fault-injection kit wraps it to crash, stall or lie.
/// </summary>
/// <remarks>
/// Ownership: <see cref="LocalTrain.GlobalWeights"/> is read-only and shared by every client of the node. A result's
/// weight vector belongs to the client from then on: it hands it to the server in process (which recycles it once
/// folded, <see cref="FedAvg.Core.Runtime.WeightBuffers"/>) or streams copies of it to another node and recycles it
/// itself. A wrapper that replays an update must return a copy, never the same array twice.
/// </remarks>
public interface ILocalTraining
{
    int SampleCount { get; }
    Task<TrainResult> Train(string clientId, LocalTrain request);
}

/// <summary>Trains on this client's shard (an index view of a shared set) on a trainer pool.</summary>
public sealed class PooledLocalTraining(TrainerPool pool, FedAvg.Core.Data.LabeledImages data, int[] indices) : ILocalTraining
{
    public int SampleCount => indices.Length;

    public Task<TrainResult> Train(string clientId, LocalTrain request) =>
        pool.Train(request.GlobalWeights, data, indices, request.Config, request.ShuffleSeed, new TrainingOrder(request.Round, clientId));
}
