using Akka.Actor;
using Akka.Event;
using FedAvg.Actors.Messages;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Client;

/// <summary>
/// One federation member. It owns a data shard (through <see cref="ILocalTraining"/>) but no model: training
/// borrows a trainer from a pool, so an idle client costs a few hundred bytes plus its index list.
/// Idle → (TrainRound) → Training → (done) → Idle; a TrainRound that arrives while training waits its turn.
/// </summary>
public sealed class FederatedClient : ReceiveActor, IWithStash
{
    readonly string clientId;
    readonly IActorRef server;
    readonly ILocalTraining training;
    readonly ILoggingAdapter log = Context.GetLogger();

    public IStash Stash { get; set; } = null!;

    public FederatedClient(string clientId, IActorRef server, ILocalTraining training)
    {
        this.clientId = clientId;
        this.server = server;
        this.training = training;
        Idle();
    }

    public static Props Props(string clientId, IActorRef server, ILocalTraining training) =>
        Akka.Actor.Props.Create(() => new FederatedClient(clientId, server, training));

    protected override void PreStart() => server.Tell(new ClientAvailable(clientId, training.SampleCount));

    protected override void PreRestart(Exception reason, object message)
    {
        // Tell the server this round is lost before the restart wipes what we were doing.
        if (reason is ClientTrainingException failure)
            server.Tell(new TrainingFailed(failure.Round, clientId, failure.InnerException?.Message ?? failure.Message));
        base.PreRestart(reason, message);
    }

    void Idle()
    {
        Receive<TrainRound>(request =>
        {
            training.Train(clientId, request).PipeTo(Self,
                success: result => new LocalTrainingDone(request.Round, result),
                failure: e => new LocalTrainingFaulted(request.Round, e));
            Become(Training);
        });
    }

    void Training()
    {
        Receive<LocalTrainingDone>(done =>
        {
            var r = done.Result;
            server.Tell(new UpdateSubmitted(done.Round, clientId, r.Weights, r.SampleCount, r.MeanLoss, r.Accuracy, r.Elapsed.TotalSeconds));
            BackToIdle();
        });
        Receive<LocalTrainingFaulted>(faulted =>
        {
            var cause = faulted.Error is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : faulted.Error;
            log.Warning("client {0}: training round {1} failed: {2}", clientId, faulted.Round, cause.Message);
            throw new ClientTrainingException(clientId, faulted.Round, cause);
        });
        Receive<TrainRound>(_ => Stash.Stash());
    }

    void BackToIdle()
    {
        Become(Idle);
        Stash.UnstashAll();
    }

    sealed record LocalTrainingDone(int Round, TrainResult Result) : INoSerializationVerificationNeeded;
    sealed record LocalTrainingFaulted(int Round, Exception Error) : INoSerializationVerificationNeeded;
}
