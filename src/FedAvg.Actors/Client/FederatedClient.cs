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
/// ignored, so a round is never trained twice at once; from another server (a standby that took over), the update
/// goes to that one. A request for a later round waits; the earlier round's result is then dropped unsent, because
/// the server has moved on.
/// </remarks>
public sealed class FederatedClient : ReceiveActor, IWithStash
{
    readonly string clientId;
    readonly ILocalTraining training;
    readonly ulong layoutHash;
    readonly IMaterializer materializer;
    readonly IUpdateInterceptor? interceptor;
    readonly FaultReports? reports;
    readonly WeightChannelClient? channel;
    // its node's session with the coordinator: every answer travels in it (Messages/Protocol.cs)
    readonly Guid session;
    readonly ILoggingAdapter log = Context.GetLogger();
    LocalTrain? current;
    bool superseded;

    public IStash Stash { get; set; } = null!;

    /// <param name="interceptor">Consulted before every update leaves this client (the fault-injection kit drops,
    /// repeats or relabels it there); null: every update is sent as it is.</param>
    /// <param name="reports">Injected faults this client must tell the server about (<see cref="FaultsFired"/>); null: none.</param>
    /// <param name="session">Its node's session with the coordinator (<see cref="InSession"/>), which its answers carry.</param>
    public FederatedClient(string clientId, ILocalTraining training, ulong layoutHash, IMaterializer materializer,
        IUpdateInterceptor? interceptor = null, WeightChannelClient? channel = null, FaultReports? reports = null, Guid session = default)
    {
        this.channel = channel;
        this.session = session;
        this.clientId = clientId;
        this.training = training;
        this.layoutHash = layoutHash;
        this.materializer = materializer;
        this.interceptor = interceptor;
        this.reports = reports;
        Idle();
    }

    public static Props Props(string clientId, ILocalTraining training, ulong layoutHash, IMaterializer materializer,
        IUpdateInterceptor? interceptor = null, WeightChannelClient? channel = null, FaultReports? reports = null, Guid session = default) =>
        Akka.Actor.Props.Create(() => new FederatedClient(clientId, training, layoutHash, materializer, interceptor, channel, reports, session));

    /// <summary>To the server this client answers, in its node's session when messages go over the wire.</summary>
    void Answer(IActorRef server, IFedAvgMessage message)
    {
        if (InSession.Needed(Context.System)) server.Tell(new InSession(session, message));
        else server.Tell(message);
    }

    public int SampleCount => training.SampleCount;

    protected override void PreRestart(Exception reason, object message)
    {
        // Tell the server this round is lost before the restart wipes what we were doing.
        if (reason is ClientTrainingException failure && current is { } request)
        {
            ReportFaults(request.Server);
            Answer(request.Server, new TrainingFailed(failure.Round, clientId, failure.InnerException?.Message ?? failure.Message));
        }
        base.PreRestart(reason, message);
    }

    void Idle()
    {
        Receive<LocalTrain>(Start);
        Receive<WeightsUnavailable>(w => Answer(w.Server, new TrainingFailed(w.Round, clientId, w.Reason)));
    }

    void Start(LocalTrain request)
    {
        current = request;
        superseded = false;
        training.Train(clientId, request).PipeTo(Self,
            success: result => new LocalTrainingDone(request.Round, result),
            failure: e => new LocalTrainingFaulted(request.Round, e));
        // a training fault (crash, stall, delay, a corruption) fires as training starts: report it now, since a
        // stalled or dropped client never answers
        ReportFaults(request.Server);
        Become(Training);
    }

    /// <summary>Tells the server the injected faults that acted on this client since the last report, if any. The
    /// server must hear of them before the answer they concern: this actor sends both, so Akka keeps their order.</summary>
    void ReportFaults(IActorRef server)
    {
        if (reports?.Take(clientId) is { Count: > 0 } faults) Answer(server, new FaultsFired(clientId, faults));
    }

    void Training()
    {
        Receive<LocalTrain>(request =>
        {
            if (request.Round == current!.Round)
            {
                if (!request.Server.Equals(current.Server))
                {
                    // A new coordinator (a standby took over from the checkpoint of the round before) asks for the round
                    // this client is training: the same global weights, config and seed, so the update it is computing is
                    // the one asked for. It goes to the new server, through its weight channel, not to the lost one.
                    log.Info("client {0}: round {1} asked for by a new server {2}: its update goes there", clientId, request.Round, request.Server.Path);
                    current = current with { Server = request.Server, UploadPort = request.UploadPort, Attempt = request.Attempt };
                }
                else log.Debug("client {0}: round {1} asked again (attempt {2}) while training it: ignored", clientId, request.Round, request.Attempt);
                request.Release?.Invoke();
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
            request.Release?.Invoke(); // training has read the global weights for the last time
            ReportFaults(request.Server); // one that fired while training ran (a custom IClientFaults may fire late)
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
                Submit(Update(WeightStream.Local(weights, layoutHash, done.Round, clientId, r.SampleCount)));
                return;
            }
            if (channel is { } ch && request.UploadPort is { } port)
            {
                // to the server's weight channel: uploaded from the vector itself, which is ours again once the server holds it
                var header = WeightStream.Header(layoutHash, done.Round, clientId, r.SampleCount, weights);
                string host = request.Server.Path.Address.Host!;
                Task.Run(async () =>
                {
                    try
                    {
                        return (WeightsPayload)await ch.Upload(weights, header, host, port).ConfigureAwait(false);
                    }
                    finally
                    {
                        WeightBuffers.Return(weights);
                    }
                }).PipeTo(Self, success: payload => new UpdateReady(Update(payload)), failure: e => new UploadFailed(done.Round, e));
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
        Receive<UpdateReady>(ready => Submit(ready.Update));
        Receive<UploadFailed>(failed =>
        {
            // Not a training failure: the update is sound, the server or the way to it is not (most often a server lost
            // as it was about to receive, before a standby takes over). No restart, so no error and stack trace from the
            // supervisor for each client: one line, the round reported failed to a server that can still hear it, and
            // the client waits for the next request (a new server asks for this round again).
            var request = current!;
            string reason = $"its update did not reach the server at {request.Server.Path.Address}: {Unwrap(failed.Error).Message}";
            log.Warning("client {0}: round {1}: {2}", clientId, failed.Round, reason);
            ReportFaults(request.Server);
            Answer(request.Server, new TrainingFailed(failed.Round, clientId, reason));
            BackToIdle();
        });
        Receive<LocalTrainingFaulted>(faulted =>
        {
            var cause = Unwrap(faulted.Error);
            log.Warning("client {0}: training round {1} failed: {2}", clientId, faulted.Round, cause.Message);
            current?.Release?.Invoke(); // the training task has ended (or the upload after it failed)
            throw new ClientTrainingException(clientId, faulted.Round, cause);
        });
    }

    /// <summary>Sends the update to the server, through the interceptor if there is one, and goes back to idle.</summary>
    void Submit(UpdateSubmitted update)
    {
        var server = current!.Server;
        if (interceptor is null)
        {
            Answer(server, update);
            BackToIdle();
            return;
        }
        var decision = interceptor.Intercept(update);
        ReportFaults(server); // a sending fault (drop, twice, stale, stop) has just fired
        foreach (var message in decision.Send) Answer(server, message);
        // our own vector, if the interceptor sent nothing that carries it, is not the server's to recycle: take it back
        if (update.Weights is LocalWeights own && !decision.Send.Any(m => m.Weights is LocalWeights l && ReferenceEquals(l.Weights, own.Weights)))
            WeightBuffers.Return(own.Weights);
        if (decision.StopClient)
        {
            log.Warning("client {0}: stopping itself instead of going back to idle after round {1} (interceptor)", clientId, update.Round);
            Context.Stop(Self);
            return;
        }
        BackToIdle();
    }

    static Exception Unwrap(Exception e) => e is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : e;

    void BackToIdle()
    {
        current = null;
        Become(Idle);
        Stash.UnstashAll();
    }

    sealed record LocalTrainingDone(int Round, TrainResult Result) : INoSerializationVerificationNeeded;
    sealed record LocalTrainingFaulted(int Round, Exception Error) : INoSerializationVerificationNeeded;
    sealed record UpdateReady(UpdateSubmitted Update) : INoSerializationVerificationNeeded;
    sealed record UploadFailed(int Round, Exception Error) : INoSerializationVerificationNeeded;
}

/// <summary>
/// From a node's <see cref="ClientHost"/> to one of its clients: train <paramref name="Round"/> from
/// <paramref name="GlobalWeights"/> (read-only: every client of the node gets the same array) and answer
/// <paramref name="Server"/>. Never leaves the node.
/// </summary>
/// <param name="UploadPort">The server's weight channel port, when the round's weights came over it: the update goes back the same way.</param>
/// <param name="Release">Called when this client reads <paramref name="GlobalWeights"/> no more (its training ended, or
/// it ignored the request), so that the node can recycle the vector; calling it again does nothing. Null: the array
/// is not recycled (in a simulation it is the server's own).</param>
public sealed record LocalTrain(int Round, int Attempt, float[] GlobalWeights, TrainConfig Config, int ShuffleSeed, IActorRef Server,
    int? UploadPort = null, Action? Release = null) : INoSerializationVerificationNeeded;

/// <summary>
/// Consulted by a <see cref="FederatedClient"/> just before an update leaves it: what to send instead (nothing, the
/// update twice, the update relabelled) and whether the client then stops. The runtime's hook for the fault-injection
/// kit (FedAvg.Actors.Faults, FedAvg.Actors.Testing); production clients have none. Called on the client actor's thread.
/// </summary>
/// <remarks>
/// Ownership: an in-process update (<see cref="LocalWeights"/>) hands its array to the server. Each array in
/// <see cref="UpdateInterception.Send"/> is handed over once, so a repeated update must carry a copy; if the original
/// array is in none of them, the client returns it to <see cref="WeightBuffers"/> itself.
/// </remarks>
public interface IUpdateInterceptor
{
    UpdateInterception Intercept(UpdateSubmitted update);
}

/// <summary>What an <see cref="IUpdateInterceptor"/> decided: the messages to send, in order, and whether the client stops afterwards.</summary>
public sealed record UpdateInterception(IReadOnlyList<UpdateSubmitted> Send, bool StopClient = false);

/// <summary>
/// The injected faults that acted on a node's clients and that each client has still to tell the server about
/// (<see cref="FaultsFired"/>). The host's fault callback adds to it, on any thread; each client takes its own when it
/// next talks to the server. Empty, and never consulted, without fault injection.
/// </summary>
public sealed class FaultReports
{
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, System.Collections.Concurrent.ConcurrentQueue<FaultFired>> pending =
        new(StringComparer.Ordinal);

    public void Add(FaultFired fault) => pending.GetOrAdd(fault.ClientId, _ => new()).Enqueue(fault);

    /// <summary>Every fault of <paramref name="clientId"/> not taken yet, in the order they fired.</summary>
    public IReadOnlyList<FaultFired> Take(string clientId)
    {
        if (!pending.TryGetValue(clientId, out var queue) || queue.IsEmpty) return [];
        var taken = new List<FaultFired>();
        while (queue.TryDequeue(out var f)) taken.Add(f);
        return taken;
    }
}

/// <summary>The node could not receive the round's weights: the client reports the round as failed.</summary>
public sealed record WeightsUnavailable(int Round, string Reason, IActorRef Server) : INoSerializationVerificationNeeded;
