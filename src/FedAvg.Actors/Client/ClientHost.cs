using Akka.Actor;
using Akka.Event;
using Akka.Streams;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Client;

/// <summary>
/// The clients a node prepared for a run: its model's layout hash and each client's local training, and optionally
/// the <see cref="IUpdateInterceptor"/> each client consults before it sends an update and the <see cref="FaultReports"/>
/// its clients tell the server about (fault injection; absent: none).
/// </summary>
public sealed record PreparedClients(ulong LayoutHash, IReadOnlyList<(string Id, ILocalTraining Training)> Clients,
    IReadOnlyDictionary<string, IUpdateInterceptor>? Interceptors = null, FaultReports? Reports = null)
    : INoSerializationVerificationNeeded
{
    public IUpdateInterceptor? InterceptorOf(string id) => Interceptors is not null && Interceptors.TryGetValue(id, out var i) ? i : null;
}

/// <summary>How a node's part in a run ended, for the host that started it.</summary>
public abstract record NodeOutcome;
/// <summary>Not an end: a line of progress for the node's console.</summary>
public sealed record NodeEvent(string Text) : NodeOutcome;
/// <summary>The server said the run is over.</summary>
public sealed record NodeRunFinished(bool Completed, string Reason) : NodeOutcome;
/// <summary>The server would not have this node; it should exit non-zero with the reason.</summary>
public sealed record NodeRefused(string Reason) : NodeOutcome;
/// <summary>The node could not prepare its clients (data missing, a bad range): exit non-zero with the reason.</summary>
public sealed record NodePreparationFailed(Exception Error) : NodeOutcome;

/// <summary>
/// The supervisor of one node's clients. It joins the federation through the coordinator (a singleton proxy in a
/// cluster, the server itself in a simulation), prepares its clients from the run's spec, registers them, and for
/// each round receives the global weights once and hands the same read-only array to each sampled client.
/// </summary>
/// <remarks>
/// Why a node-local supervisor and not remote deployment (docs/architecture.md): a remotely deployed child dies with
/// its parent's node, so a server crash would kill every client; here clients outlive a server restart and simply
/// register again. The policy is the server's: a client that throws is restarted, and its PreRestart reports the
/// round as failed. The server watches every client it registered.
/// </remarks>
public sealed class ClientHost : ReceiveActor, IWithTimers
{
    readonly string nodeId;
    readonly string federation;
    readonly ClientRequest request;
    readonly IActorRef coordinator;
    readonly Func<RunSpec, Task<PreparedClients>> prepare;
    readonly Action<NodeOutcome> report;
    readonly WeightChannelClient? channel;
    // This node's session with the coordinator (Messages/Protocol.cs): drawn once per node, before the first
    // incarnation of this actor, so a restart keeps it; the coordinator's messages count only inside it.
    readonly Guid session;
    readonly ILoggingAdapter log = Context.GetLogger();
    // messages dropped for their session, one line per sender and kind every 10 s: any member can send them at wire speed
    readonly PeerWarnings drops;
    readonly Dictionary<string, IActorRef> children = new();
    // Round vectors this node received over the weight channel (rented from WeightBuffers), and how many holders each
    // has: every client told to train on it until it stops reading it, and this host until the server moves to another
    // (round, attempt), so a later batch of the same round, which the channel answers with the same array, never finds
    // it recycled. At zero the vector goes back to the pool and the next push lands in it: a node allocates no
    // 6.65 MB (`mcmahan-cnn`) vector per round. A holder that never lets go (a stalled or stopped client) only keeps
    // its vector out of the pool.
    readonly Dictionary<float[], int> holders = new(ReferenceEqualityComparer.Instance);
    readonly List<float[]> heldForRound = new();
    (int Round, int Attempt) heldFor;
    IMaterializer materializer = null!;
    ulong layoutHash;
    string? heldBackFor; // the reason the server last gave for holding this node's join back (JoinHeldBack)
    readonly TimeSpan heldBackLimit;
    // With TLS (Hosting/NodeIdentity): this node's proof of its certificate, made once it knows its own address, sent
    // with every join; and the coordinator whose welcome proved a server certificate, the only one it trains for
    readonly Hosting.NodeIdentity? identity;
    NodeProof? proof;
    IActorRef? welcomedBy;
    bool registerOnWelcome; // asked to register again (RegisterAgain): with TLS, only once the coordinator has proven itself
    sealed record HeldBackTooLong : INoSerializationVerificationNeeded
    {
        public static readonly HeldBackTooLong Instance = new();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public ClientHost(string nodeId, string federation, ClientRequest request, IActorRef coordinator,
        Func<RunSpec, Task<PreparedClients>> prepare, Action<NodeOutcome> report, Guid session, WeightChannelClient? channel = null,
        TimeSpan? heldBackLimit = null, Hosting.NodeIdentity? identity = null)
    {
        this.identity = identity;
        this.channel = channel;
        this.heldBackLimit = heldBackLimit ?? TimeSpan.FromSeconds(30);
        this.session = session;
        this.nodeId = nodeId;
        this.federation = federation;
        this.request = request;
        this.coordinator = coordinator;
        this.prepare = prepare;
        this.report = report;
        drops = new PeerWarnings(line => log.Warning("{0}", line), $"node {nodeId}");
        Joining();
    }

    /// <param name="heldBackLimit">How long this node waits while the server holds its join back (<see cref="JoinHeldBack"/>:
    /// another live node has its id) before it gives up as refused; `fedavg node` passes its --join-timeout (30 s),
    /// which is far longer than the failure detector takes to notice a previous incarnation that died.</param>
    /// <param name="identity">With TLS (`fedavg node`): every join carries this node's proof of its certificate, and the
    /// node takes part only after a welcome that proves a server certificate of the federation, training only for the
    /// coordinator that sent it. Null: joins and welcomes are taken at their word, as in one process and in plaintext.</param>
    public static Props Props(string nodeId, string federation, ClientRequest request, IActorRef coordinator,
        Func<RunSpec, Task<PreparedClients>> prepare, Action<NodeOutcome> report, WeightChannelClient? channel = null,
        TimeSpan? heldBackLimit = null, Hosting.NodeIdentity? identity = null)
    {
        var session = InSession.NewSession();
        return Akka.Actor.Props.Create(() => new ClientHost(nodeId, federation, request, coordinator, prepare, report, session, channel, heldBackLimit, identity));
    }

    /// <summary>
    /// The coordinator's messages count only in this node's session: one in another session, or outside one (but
    /// <see cref="RegisterAgain"/>, which only makes the node join again), is dropped with a warning. Akka's sender proves
    /// nothing over the wire (Messages/Protocol.cs), so a TrainRound from any other member would otherwise make this
    /// node's clients train on weights of its choosing and send it their updates, and a RunFinished would end the node.
    /// </summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        if (InSession.Admit(ref message, session, OverTheWire, out bool outside)) return base.AroundReceive(receive, message);
        Dropped(message, outside ? "outside this node's session with the coordinator" : "in another session than this node's with the coordinator");
        return true;
    }

    void Dropped(object message, string how) =>
        drops.Warn(Sender.Path.Address.ToString(), $"{message.GetType().Name} {how}",
            $"node {nodeId}: ignoring a {message.GetType().Name} from {Sender.Path}: it came {how}, so the coordinator did not send it");

    bool OverTheWire => InSession.Needed(Context.System);

    void ToCoordinator(IFedAvgMessage message) => InSessionTo(coordinator, message);

    void InSessionTo(IActorRef to, IFedAvgMessage message)
    {
        if (OverTheWire) to.Tell(new InSession(session, message));
        else to.Tell(message);
    }

    // The server's policy for its clients: a client that throws is restarted and the run goes on without its round.
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: -1, withinTimeRange: Timeout.InfiniteTimeSpan, localOnlyDecider: _ => Directive.Restart);

    protected override void PreStart()
    {
        materializer = Context.System.Materializer();
        proof = identity?.ProveJoin(federation, nodeId, session, ((ExtendedActorSystem)Context.System).Provider.DefaultAddress);
        SendJoin();
    }

    void SendJoin()
    {
        coordinator.Tell(Join());
        Timers.StartSingleTimer(Retry.Timer, Retry.Instance, Retry.Every);
    }

    JoinFederation Join() => new(nodeId, federation, request, session, proof);

    // ---- joining: until the coordinator answers ----------------------------------------------------------

    void Joining()
    {
        Receive<Retry>(_ => SendJoin());
        Receive<Welcome>(welcome =>
        {
            if (!Welcomed(welcome)) return;
            Timers.Cancel(Retry.Timer);
            log.Info("node {0}: joined federation '{1}' ({2}, {3}, K={4}); preparing clients {5}",
                nodeId, welcome.Spec.Federation, welcome.Spec.Dataset, welcome.Spec.Model, welcome.Spec.Clients, request);
            report(new NodeEvent($"joined federation '{welcome.Spec.Federation}': {welcome.Spec.Dataset}, {welcome.Spec.Model}, " +
                                 $"K={welcome.Spec.Clients}, {welcome.Spec.Partition}, seed {welcome.Spec.Seed}; preparing clients {request}"));
            prepare(welcome.Spec).PipeTo(Self, failure: e => new PreparationFailed(e));
            Become(Preparing);
        });
        Refusals();
    }

    void Preparing()
    {
        Receive<PreparedClients>(prepared =>
        {
            layoutHash = prepared.LayoutHash;
            foreach (var (id, training) in prepared.Clients)
            {
                sampleCounts[id] = training.SampleCount;
                children[id] = Context.ActorOf(FederatedClient.Props(id, training, layoutHash, materializer, prepared.InterceptorOf(id), channel,
                    prepared.Reports, session), Uri.EscapeDataString(id));
            }
            SendRegistration();
            Become(Serving);
        });
        Receive<PreparationFailed>(f =>
        {
            var error = f.Error is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : f.Error;
            log.Error("node {0}: cannot prepare its clients: {1}", nodeId, error.Message);
            report(new NodePreparationFailed(error));
            Context.Stop(Self);
        });
        Receive<Welcome>(w => Welcomed(w));
        Receive<Retry>(_ => { });
        Refusals();
    }

    // ---- serving rounds ----------------------------------------------------------------------------------

    /// <summary>
    /// Registration goes in batches: every message between nodes must fit Akka.Remote's 128,000-byte frame, and one
    /// client entry (id, count, actor path) is about 120 bytes, so a node of 10,000 clients sends 40 messages.
    /// </summary>
    public const int ClientsPerRegistration = 250;

    void SendRegistration()
    {
        registered = 0;
        var entries = children.Select(c => new ClientEntry(c.Key, SampleCountOf(c.Key), c.Value)).ToList();
        foreach (var batch in entries.Chunk(ClientsPerRegistration))
            ToCoordinator(new RegisterClients(nodeId, layoutHash, batch));
        Timers.StartSingleTimer(Retry.Timer, Retry.Instance, Retry.Every);
    }

    int registered;

    readonly Dictionary<string, int> sampleCounts = new();
    int SampleCountOf(string id) => sampleCounts[id];

    void Serving()
    {
        Receive<Retry>(_ => SendRegistration());
        Receive<Registered>(r =>
        {
            registered += r.Clients;
            if (registered < children.Count) return; // more batches to be acknowledged
            Timers.Cancel(Retry.Timer);
            report(new NodeEvent($"{children.Count} clients registered with the server"));
        });
        // A coordinator that lost track of this node, or a new one (a standby took over, or the server restarted), which
        // knows no node yet and refuses clients of a node that has not joined: join again, then register (the proxy keeps
        // the order of the two).
        Receive<RegisterAgain>(_ =>
        {
            coordinator.Tell(Join());
            // with TLS the clients' actors and sample counts go only to a coordinator that has proven itself (Welcomed)
            if (identity is null) SendRegistration();
            else registerOnWelcome = true;
        });
        Receive<Welcome>(w =>
        {
            if (!Welcomed(w) || !registerOnWelcome) return;
            registerOnWelcome = false;
            SendRegistration();
        });
        Receive<TrainRound>(round =>
        {
            var server = Sender;
            if (identity is not null && !server.Equals(welcomedBy))
            {
                // in this node's session, so from the coordinator it joined: one that has not proven itself since (it
                // took the singleton over) gets no updates until its welcome does
                drops.Warn(server.Path.Address.ToString(), "TrainRound from an unproven coordinator",
                    $"node {nodeId}: ignoring round {round.Round} from {server.Path}: no welcome of that coordinator proved a server " +
                    $"certificate{(welcomedBy is null ? "" : $" (this node trains for {welcomedBy.Path})")}");
                return;
            }
            if (round.Weights.Header.LayoutHash != layoutHash)
            {
                Unavailable(round, server, $"global weights of layout {round.Weights.Header.LayoutHash:x16}, this node's model is {layoutHash:x16}");
                return;
            }
            var receive = round.Weights is ChanneledWeights offered
                ? channel?.Fetch(offered, server.Path.Address.Host!, WeightBuffers.Rent)
                  ?? Task.FromException<float[]>(new WeightTransferException("the server offers its weights on a weight channel, and this node has no channel client"))
                : WeightStream.Receive(round.Weights, materializer);
            receive.PipeTo(Self,
                success: weights => new RoundWeights(round, weights, server),
                failure: e => new RoundWeightsFailed(round, e.GetBaseException().Message, server));
        });
        Receive<RoundWeights>(w =>
        {
            TrainConfig config;
            try
            {
                config = w.Round.Config.ToTrainConfig();
                config.Validate();
            }
            catch (Exception e) when (e is ArgumentException or KeyNotFoundException or FedAvg.Core.UsageException)
            {
                Unavailable(w.Round, w.Server, $"the round config cannot be used: {e.Message}");
                return;
            }
            report(new NodeEvent($"round {w.Round.Round}{(w.Round.Attempt > 1 ? $" (attempt {w.Round.Attempt})" : "")}: training {w.Round.Clients.Count} clients"));
            bool recycled = w.Round.Weights is ChanneledWeights;
            if (recycled) Hold(w.Round, w.Weights);
            var self = Self;
            foreach (var task in w.Round.Clients)
            {
                if (children.TryGetValue(task.ClientId, out var child))
                    child.Tell(new LocalTrain(w.Round.Round, w.Round.Attempt, w.Weights, config, task.ShuffleSeed, w.Server,
                        w.Round.Weights is ChanneledWeights c ? c.Port : null, recycled ? ReleaseOnce(self, w.Weights) : null));
                else
                    InSessionTo(w.Server, new TrainingFailed(w.Round.Round, task.ClientId, $"node {nodeId} does not host {task.ClientId}"));
            }
        });
        Receive<RoundWeightsFailed>(f => Unavailable(f.Round, f.Server, f.Reason));
        Receive<WeightsReleased>(r => Release(r.Weights));
        Refusals();
    }

    /// <summary>This host holds <paramref name="weights"/> while the server is on <paramref name="round"/>'s (round, attempt), and lets go of the vectors of the one before.</summary>
    void Hold(TrainRound round, float[] weights)
    {
        if (heldFor != (round.Round, round.Attempt))
        {
            foreach (var earlier in heldForRound) Release(earlier);
            heldForRound.Clear();
            heldFor = (round.Round, round.Attempt);
        }
        if (heldForRound.Contains(weights, ReferenceEqualityComparer.Instance)) return;
        heldForRound.Add(weights);
        holders[weights] = holders.GetValueOrDefault(weights) + 1;
    }

    /// <summary>A release for one client's LocalTrain; idempotent, since a client may end its request on more than one path.</summary>
    Action ReleaseOnce(IActorRef self, float[] weights)
    {
        holders[weights] = holders.GetValueOrDefault(weights) + 1;
        int released = 0;
        return () =>
        {
            if (Interlocked.Exchange(ref released, 1) == 0) self.Tell(new WeightsReleased(weights));
        };
    }

    void Release(float[] weights)
    {
        if (!holders.TryGetValue(weights, out int count)) return;
        if (count > 1)
        {
            holders[weights] = count - 1;
            return;
        }
        holders.Remove(weights);
        WeightBuffers.Return(weights);
    }

    void Unavailable(TrainRound round, IActorRef server, string reason)
    {
        log.Warning("node {0}: round {1}: cannot use the global weights: {2}", nodeId, round.Round, reason);
        foreach (var task in round.Clients)
            if (children.TryGetValue(task.ClientId, out var child)) child.Tell(new WeightsUnavailable(round.Round, reason, server));
    }

    /// <summary>
    /// The coordinator answered a join: whatever held it back is over. With TLS the welcome must prove a server
    /// certificate of the federation, signed for this node's join from the address it came from; if it does not, this
    /// node takes no part (refused: it exits with the reason). Returns whether it was accepted.
    /// </summary>
    bool Welcomed(Welcome welcome)
    {
        var from = Sender.Path.Address;
        if (identity?.WelcomeRejection(welcome, federation, nodeId, session, from) is { } why)
        {
            Refused($"the coordinator at {from} is not a server of federation '{federation}': {why}");
            return false;
        }
        welcomedBy = Sender;
        Timers.Cancel(HeldBackTooLong.Instance);
        heldBackFor = null;
        return true;
    }

    void Refusals()
    {
        Receive<JoinRefused>(r => Refused($"the server refused this node: {r.Reason}"));
        Receive<JoinHeldBack>(h =>
        {
            // said once per reason: the join is asked again every 2 s, and each is held back the same way
            if (h.Reason == heldBackFor) return;
            if (heldBackFor is null) Timers.StartSingleTimer(HeldBackTooLong.Instance, HeldBackTooLong.Instance, heldBackLimit);
            heldBackFor = h.Reason;
            report(new NodeEvent($"the server holds this node's join back: {h.Reason}; asking again every {Retry.Every.TotalSeconds:0} s " +
                                 $"for up to {heldBackLimit.TotalSeconds:0} s"));
        });
        Receive<HeldBackTooLong>(_ => Refused($"the server held this node's join back for {heldBackLimit.TotalSeconds:0} s: {heldBackFor}"));
        Receive<RegistrationRefused>(r => Refused($"the server refused this node's clients: {r.Reason}"));
        Receive<RevokedCertificates>(Revoke);
        Receive<RevocationsKept>(k => report(new NodeEvent(k.Text)));
        Receive<RunFinished>(f =>
        {
            // with TLS, once a coordinator's welcome was accepted, only it ends this node's part (before any welcome, the
            // end answers a join: the run was over)
            if (identity is not null && welcomedBy is not null && !Sender.Equals(welcomedBy))
            {
                drops.Warn(Sender.Path.Address.ToString(), "RunFinished from an unproven coordinator",
                    $"node {nodeId}: ignoring the end of the run from {Sender.Path}: this node trains for {welcomedBy.Path}");
                return;
            }
            log.Info("node {0}: the run is over ({1})", nodeId, f.Reason);
            Timers.CancelAll();
            report(new NodeRunFinished(f.Completed, f.Reason));
        });
    }

    /// <summary>
    /// The coordinator's revocations (with TLS): in force here at once, and added to the revoked.txt beside this node's
    /// ca.crt, so that it refuses the members the server refused without a copy made by hand. Heard only from the
    /// coordinator whose welcome proved a server certificate; in plaintext there is nothing to revoke.
    /// </summary>
    void Revoke(RevokedCertificates revoked)
    {
        if (identity is null || !Sender.Equals(welcomedBy))
        {
            drops.Warn(Sender.Path.Address.ToString(), "revocations not from the coordinator",
                $"node {nodeId}: ignoring {revoked.Serials.Count} revoked certificate(s) from {Sender.Path}: " +
                (identity is null ? "this node runs without TLS" : "not the coordinator whose welcome this node accepted"));
            return;
        }
        identity.Tls.Replicate(revoked.Serials, Sender.Path.Address.ToString())?.PipeTo(Self, success: line => new RevocationsKept(line));
    }

    void Refused(string reason)
    {
        log.Error("node {0}: {1}", nodeId, reason);
        Timers.CancelAll();
        report(new NodeRefused(reason));
        Context.Stop(Self);
    }

    protected override void PostStop()
    {
        Timers.CancelAll();
        drops.Dispose();
    }

    sealed record PreparationFailed(Exception Error) : INoSerializationVerificationNeeded;
    sealed record RoundWeights(TrainRound Round, float[] Weights, IActorRef Server) : INoSerializationVerificationNeeded;
    sealed record RoundWeightsFailed(TrainRound Round, string Reason, IActorRef Server) : INoSerializationVerificationNeeded;
    sealed record WeightsReleased(float[] Weights) : INoSerializationVerificationNeeded;
    sealed record RevocationsKept(string Text) : INoSerializationVerificationNeeded;
}
