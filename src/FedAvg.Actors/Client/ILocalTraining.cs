using FedAvg.Actors.Messages;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Client;

/// <summary>
/// How a client's round of local training gets done, off the actor's thread. The real one runs on a
/// <see cref="TrainerPool"/>; fault-injection tests wrap it to crash, stall or lie.
/// </summary>
/// <remarks>
/// A result's weight vector passes to the server with the update, which recycles it once folded
/// (<see cref="FedAvg.Core.Runtime.WeightBuffers"/>): a wrapper that replays an update must send a copy, never
/// the same array twice.
/// </remarks>
public interface ILocalTraining
{
    int SampleCount { get; }
    Task<TrainResult> Train(string clientId, TrainRound request);
}

/// <summary>Trains on this client's shard (an index view of a shared set) on a trainer pool.</summary>
public sealed class PooledLocalTraining(TrainerPool pool, FedAvg.Core.Data.LabeledImages data, int[] indices) : ILocalTraining
{
    public int SampleCount => indices.Length;

    public Task<TrainResult> Train(string clientId, TrainRound request) =>
        pool.Train(request.GlobalWeights, data, indices, request.Config, request.ShuffleSeed, new TrainingOrder(request.Round, clientId));
}
