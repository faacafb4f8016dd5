using Akka.Actor;
using Akka.Event;
using Akka.Streams;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Client;

/// <summary>
/// One federation member, a child of the <see cref="ClientHost"/> of the node that holds its data. It owns a shard
/// (through <see cref="ILocalTraining"/>) but no model: training borrows a trainer from the node's pool, so an idle
/// client costs a few hundred bytes plus its index list.
/// Idle → (LocalTrain r) → Training r → (done) → submits the update → Idle.
/// </summary>
/// <remarks>
/// A request for the round it is training already (the server asked again, or a retry overtook the answer) is
/// ignored, so a round is never trained twice at once. A request for a later round waits; the earlier round's
/// result is then dropped unsent, because the server has moved on.
/// </remarks>
public sealed class FederatedClient : ReceiveActor, IWithStash
{
    readonly string clientId;
    readonly ILocalTraining training;
    readonly ulong layoutHash;
    readonly IMaterializer materializer;
    readonly ILoggingAdapter log = Context.GetLogger();
    LocalTrain? current;
    bool superseded;

    public IStash Stash { get; set; } = null!;

    public FederatedClient(string clientId, ILocalTraining training, ulong layoutHash, IMaterializer materializer)
    {
        this.clientId = clientId;
        this.training = training;
        this.layoutHash = layoutHash;
        this.materializer = materializer;
        Idle();
    }

    public static Props Props(string clientId, ILocalTraining training, ulong layoutHash, IMaterializer materializer) =>
        Akka.Actor.Props.Create(() => new FederatedClient(clientId, training, layoutHash, materializer));

    public int SampleCount => training.SampleCount;

    protected override void PreRestart(Exception reason, object message)
    {
        // Tell the server this round is lost before the restart wipes what we were doing.
        if (reason is ClientTrainingException failure && current is { } request)
            request.Server.Tell(new TrainingFailed(failure.Round, clientId, failure.InnerException?.Message ?? failure.Message));
        base.PreRestart(reason, message);
    }

    void Idle()
    {
        Receive<LocalTrain>(Start);
        Receive<WeightsUnavailable>(w => w.Server.Tell(new TrainingFailed(w.Round, clientId, w.Reason)));
    }

    void Start(LocalTrain request)
    {
        current = request;
        superseded = false;
        training.Train(clientId, request).PipeTo(Self,
            success: result => new LocalTrainingDone(request.Round, result),
            failure: e => new LocalTrainingFaulted(request.Round, e));
        Become(Training);
    }

    void Training()
    {
        Receive<LocalTrain>(request =>
        {
            if (request.Round == current!.Round)
            {
                log.Debug("client {0}: round {1} asked again (attempt {2}) while training it: ignored", clientId, request.Round, request.Attempt);
                return;
            }
            if (request.Round > current.Round) superseded = true;
            Stash.Stash();
        });
        Receive<WeightsUnavailable>(_ => Stash.Stash());
        Receive<LocalTrainingDone>(done =>
        {
            var r = done.Result;
            var request = current!;
            if (superseded)
            {
                log.Info("client {0}: dropping round {1}'s update: a later round was asked for meanwhile", clientId, done.Round);
                WeightBuffers.Return(r.Weights);
                BackToIdle();
                return;
            }
            var weights = r.Weights;
            UpdateSubmitted Update(WeightsPayload payload) =>
                new(done.Round, clientId, r.SampleCount, r.MeanLoss, r.Accuracy, r.Elapsed.TotalSeconds, payload);
            if (WeightStream.IsLocal(request.Server))
            {
                // in process the server takes the vector itself, and recycles it once folded
                request.Server.Tell(Update(WeightStream.Local(weights, layoutHash, done.Round, clientId, r.SampleCount)));
                BackToIdle();
                return;
            }
            // to another node: chunks and checksum in one pass off the actor, then the vector is ours to recycle
            Task.Run(() =>
            {
                var encoded = WeightStream.Encode(weights, layoutHash, done.Round, clientId, r.SampleCount);
                WeightBuffers.Return(weights);
                return WeightStream.Stream(encoded, materializer);
            }).PipeTo(Self, success: payload => new UpdateReady(Update(payload)), failure: e => new LocalTrainingFaulted(done.Round, e));
        });
        Receive<UpdateReady>(ready =>
        {
            current!.Server.Tell(ready.Update);
            BackToIdle();
        });
        Receive<LocalTrainingFaulted>(faulted =>
        {
            var cause = faulted.Error is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : faulted.Error;
            log.Warning("client {0}: training round {1} failed: {2}", clientId, faulted.Round, cause.Message);
            throw new ClientTrainingException(clientId, faulted.Round, cause);
        });
    }

    void BackToIdle()
    {
        current = null;
        Become(Idle);
        Stash.UnstashAll();
    }

    sealed record LocalTrainingDone(int Round, TrainResult Result) : INoSerializationVerificationNeeded;
    sealed record LocalTrainingFaulted(int Round, Exception Error) : INoSerializationVerificationNeeded;
    sealed record UpdateReady(UpdateSubmitted Update) : INoSerializationVerificationNeeded;
}

/// <summary>
/// From a node's <see cref="ClientHost"/> to one of its clients: train <paramref name="Round"/> from
/// <paramref name="GlobalWeights"/> (read-only: every client of the node gets the same array) and answer
/// <paramref name="Server"/>. Never leaves the node.
/// </summary>
public sealed record LocalTrain(int Round, int Attempt, float[] GlobalWeights, TrainConfig Config, int ShuffleSeed, IActorRef Server)
    : INoSerializationVerificationNeeded;

/// <summary>The node could not receive the round's weights: the client reports the round as failed.</summary>
public sealed record WeightsUnavailable(int Round, string Reason, IActorRef Server) : INoSerializationVerificationNeeded;
