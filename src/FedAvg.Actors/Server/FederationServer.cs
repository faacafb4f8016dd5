using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Streams;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Server;

/// <summary>
/// The FedAvg server (the coordinator) as a state machine:
/// waiting for clients → round r training → aggregating → evaluating → round r+1 … → completed (or failed).
/// It moves weights and keeps time; the strategy decides who trains and how updates combine. Slow work
/// (aggregation, evaluation, checkpoint I/O, receiving streamed weights) runs off the actor and comes back as a message.
/// </summary>
/// <remarks>
/// Clients live on nodes (<see cref="Client.ClientHost"/>), in this process or on others. The server learns them by
/// registration, which any node may repeat; it watches each client, and in a cluster it follows membership: a node
/// that becomes unreachable or leaves has its clients dropped from the current round at once, not at the deadline.
/// An update counts only when it comes from the actor registered under its client id.
/// </remarks>
public sealed class FederationServer : ReceiveActor, IWithTimers
{
    const string DeadlineTimer = "round-deadline";

    /// <summary>Client tasks in one TrainRound to another node: about 25 bytes each, 50 KB in all, well inside the frame.</summary>
    public const int TasksPerMessage = 2000;
    const string WaitTimer = "wait-for-clients";

    readonly IStrategy strategy;
    readonly ServerSettings settings;
    readonly RunSpec spec;
    readonly Func<float[], Task<Evaluation>> evaluate;
    readonly IActorRef observer;
    readonly WeightChannelServer? channel;
    // With TLS: a join counts only with its node's proof, and a welcome carries this server's (Hosting/NodeIdentity)
    readonly Hosting.NodeIdentity? identity;
    // With TLS: the revoked serials each node was sent (RevokedCertificates), so that nodes refuse the members this
    // server refuses (a member connects to any other) without a copy of revoked.txt
    readonly Dictionary<string, HashSet<string>> revokedSentTo = new();
    // With TLS, the join proofs checked per sender address (a chain build each: Hosting/ProofBudget)
    readonly Hosting.ProofBudget proofBudget = new();
    // the weight channel's tickets for the current global weights (one per node) and the (round, attempt) they are for
    readonly HashSet<Guid> offered = new();
    (int Round, int Attempt) offeredFor;
    readonly ILoggingAdapter log = Context.GetLogger();
    // messages dropped for their session, one line per sender and kind every 10 s: any member can send them at wire speed
    readonly PeerWarnings drops;
    IMaterializer materializer = null!;

    readonly Dictionary<string, RegisteredClient> clients = new();
    readonly Dictionary<string, NodeInfo> nodes = new();
    // the same nodes by session, which every message over the wire names (AroundReceive): kept by SetNode and ForgetNode
    readonly Dictionary<Guid, NodeInfo> bySession = new();
    // joins held back because their node id belongs to a live member elsewhere (HeldByALiveMember): warned once each
    readonly HashSet<(string NodeId, Address From)> deferred = new();
    // Nodes removed because their certificate was revoked: a join or registration from there is refused, whatever
    // node id it claims, until the cluster has downed it (its TLS handshakes are refused from then on anyway).
    readonly HashSet<Address> revokedAddresses = new();
    float[] global;
    int round;
    int attempt;
    RoundPlan plan = null!;
    HashSet<string> sampled = new();
    // What each accepted update said; its weights went into the aggregator and are not kept here.
    readonly Dictionary<string, AcceptedUpdate> accepted = new();
    readonly HashSet<string> receiving = new();
    IRoundAggregator aggregator = null!;
    readonly HashSet<string> failed = new();
    // Every answer not counted since the round opened, and why: reported with the round's metrics.
    readonly List<Rejection> rejections = new();
    // The injected faults the sampled clients reported for this round (FaultsFired), until its record is sent; and
    // the actor each sampled client was when the round started (a client that stops reports, then is gone).
    readonly List<FaultFired> faultsFired = new();
    readonly Dictionary<string, RegisteredClient> roster = new();
    bool recordingFaults;
    readonly Stopwatch roundClock = new();
    TimeSpan trainingTime;
    // With the norm rule on (UpdateNormRule), the accepted updates wait here until the round closes: the rule needs the
    // round's median ‖Δ‖ before any of them can be folded. n·d floats, as a buffered strategy holds.
    readonly Dictionary<string, (UpdateSubmitted Update, float[] Weights)> held = new();
    // The median ‖Δ‖ of the closing round's well-formed updates (rounds.csv's median_update_norm)
    double? roundMedianNorm;
    double lastAccuracy;
    int clientsNeeded;
    bool training;
    bool finished;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="identity">With TLS (`fedavg server`): a join is admitted only with a proof of the certificate named
    /// as its node, and each welcome is signed with this server's certificate. Null: every join is taken at its word
    /// and welcomes carry no proof, as in one process and in plaintext.</param>
    public FederationServer(IStrategy strategy, ServerSettings settings, float[] initialWeights,
        Func<float[], Task<Evaluation>> evaluate, IActorRef? observer = null, WeightChannelServer? channel = null,
        Hosting.NodeIdentity? identity = null)
    {
        this.identity = identity;
        settings.Validate();
        if (initialWeights.Length != settings.Layout.TotalLength)
            throw new ArgumentException($"initial weights have {initialWeights.Length} values, model {settings.ModelName} has {settings.Layout.TotalLength}.");
        this.strategy = strategy;
        this.settings = settings;
        spec = settings.RunSpec;
        this.evaluate = evaluate;
        this.observer = observer ?? ActorRefs.Nobody;
        this.channel = channel;
        channel?.AcceptUploadsOf(settings.Layout.TotalLength);
        drops = new PeerWarnings(line => log.Warning("{0}", line), "server");
        global = initialWeights;
        round = settings.FirstRound - 1;
        clientsNeeded = settings.MinClientsToStart;
        WaitingForClients();
    }

    public static Props Props(IStrategy strategy, ServerSettings settings, float[] initialWeights,
        Func<float[], Task<Evaluation>> evaluate, IActorRef? observer = null, WeightChannelServer? channel = null,
        Hosting.NodeIdentity? identity = null) =>
        Akka.Actor.Props.Create(() => new FederationServer(strategy, settings, initialWeights, evaluate, observer, channel, identity));

    bool IsCluster => ((ExtendedActorSystem)Context.System).Provider is ClusterActorRefProvider;
    // Messages can come from other processes: Akka's sender proves nothing, only a node's session does.
    bool OverTheWire => InSession.Needed(Context.System);

    // The node whose session the message being handled came in (InSession); null outside one, which only an actor of
    // this process can send once anything arrives over the wire (AroundReceive).
    NodeInfo? from;

    /// <summary>
    /// A message in a node's session is handled as that node's, whoever Akka names as its sender; one in no known
    /// session, or a node's message outside a session when messages come over the wire, is dropped with a warning.
    /// Without this any member could submit an update or a failure in any client's name (Messages/Protocol.cs).
    /// </summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        if (message is InSession inSession)
        {
            if (!bySession.TryGetValue(inSession.Session, out var node))
            {
                Unproven(inSession.Message, "in the session of no node that joined");
                return true;
            }
            from = node;
            try
            {
                return base.AroundReceive(receive, inSession.Message);
            }
            finally
            {
                from = null;
            }
        }
        if (OverTheWire && message is IFedAvgMessage fed and not RegisterAgain && InSession.InSessionTypes.Contains(message.GetType()))
        {
            Unproven(fed, "outside any node's session");
            return true;
        }
        return base.AroundReceive(receive, message);
    }

    void Unproven(IFedAvgMessage message, string how)
    {
        drops.Warn(Sender.Path.Address.ToString(), $"{message.GetType().Name} {how}",
            $"server: ignoring a {message.GetType().Name} from {Sender.Path}" +
            (message is UpdateSubmitted u ? $" for {u.ClientId}, round {u.Round}" : message is TrainingFailed f ? $" for {f.ClientId}, round {f.Round}" : "") +
            $": it came {how}");
        // an in-process vector goes back to the pool; an upload is left alone (its ticket may be another node's)
        if (message is UpdateSubmitted { Weights: LocalWeights local }) WeightBuffers.Return(local.Weights);
    }

    /// <summary>To a node (its host or one of its clients), in its session when messages go over the wire.</summary>
    void Tell(IActorRef to, Guid session, IFedAvgMessage message)
    {
        if (OverTheWire) to.Tell(new InSession(session, message));
        else to.Tell(message);
    }

    /// <summary>The answer to the message being handled, in the session it came in.</summary>
    void Answer(IFedAvgMessage message)
    {
        if (from is { } node) Tell(Sender, node.Session, message);
        else Sender.Tell(message);
    }

    protected override void PreStart()
    {
        materializer = Context.System.Materializer();
        if (IsCluster)
            Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.UnreachableMember), typeof(ClusterEvent.ReachableMember), typeof(ClusterEvent.MemberRemoved));
        if (IsCluster) AskNodesToRegister();
        var self = Self;
        channel?.ReportRevokedNodes((node, reason) => self.Tell(new NodeRevoked(node, reason)));
        log.Info("server: waiting for {0} clients", settings.MinClientsToStart);
        Timers.StartSingleTimer(WaitTimer, new WaitExpired(round + 1), settings.ClientWait);
    }

    /// <summary>
    /// A coordinator that starts in a running cluster (a standby taking over, the singleton moving) knows no node yet,
    /// while the nodes' clients are up and would only retry their join if their own actor system restarted: each
    /// client member's node agent is asked to join and register again. On a fresh cluster there is none to ask.
    /// </summary>
    void AskNodesToRegister()
    {
        var cluster = Cluster.Get(Context.System);
        foreach (var member in cluster.State.Members.Where(m => m.HasRole(Hosting.ClusterHosting.ClientRole) && m.Status == MemberStatus.Up))
            Context.ActorSelection(new RootActorPath(member.Address) / "user" / Hosting.ClusterHosting.NodeAgentName).Tell(RegisterAgain.Instance);
    }

    protected override void PostStop()
    {
        channel?.ReportRevokedNodes(null);
        drops.Dispose();
        Withdraw();
        if (IsCluster) Cluster.Get(Context.System).Unsubscribe(Self);
    }

    // ---- waiting for clients -------------------------------------------------------------------------

    void WaitingForClients()
    {
        Receive<RegisterClients>(r =>
        {
            Register(r);
            if (clients.Count < clientsNeeded) return;
            Timers.Cancel(WaitTimer);
            if (round >= settings.Rounds) Complete(null);
            else StartRound(round + 1);
        });
        Receive<WaitExpired>(w => Fail($"waited {Hosting.HoconText.Duration(settings.ClientWait)} (wait-for-clients) for {clientsNeeded} clients before round {w.Round}; {clients.Count} registered."));
        Common();
    }

    void WaitForClients(string why)
    {
        Timers.Cancel(DeadlineTimer);
        clientsNeeded = settings.MinClients;
        log.Warning("server: {0}; waiting up to {1} for at least {2} clients (round {3} starts again then)",
            why, settings.ClientWait, clientsNeeded, round);
        ReleaseRound();
        round--; // the interrupted round starts afresh, with whoever is registered then
        Timers.StartSingleTimer(WaitTimer, new WaitExpired(round + 1), settings.ClientWait);
        Become(WaitingForClients);
    }

    // ---- round r: training ---------------------------------------------------------------------------

    void StartRound(int next)
    {
        round = next;
        attempt = 1;
        accepted.Clear();
        failed.Clear();
        receiving.Clear();
        rejections.Clear();
        faultsFired.Clear();
        roster.Clear();
        recordingFaults = true;
        roundClock.Restart();
        try
        {
            plan = strategy.ConfigureRound(round, clients.Keys.ToList());
            aggregator = strategy.StartAggregation(plan, global);
        }
        catch (Exception e)
        {
            Fail($"round {round}: the strategy could not configure the round: {e.Message}");
            return;
        }
        sampled = plan.Clients.ToHashSet();
        foreach (var id in sampled)
            if (clients.TryGetValue(id, out var c)) roster[id] = c;
        training = true;
        Become(Training);
        FanOut(plan.Clients);
        SendRevocations();
    }

    /// <summary>
    /// With TLS, each node is sent the revoked serials it was not sent yet: after its welcome, and as each round starts
    /// (revoked.txt is read again whenever it changes: TransportSecurity.Revoked, looked at off the actor, since it may
    /// read the file). A node revokes them at once and adds them to its own revoked.txt (ClientHost).
    /// </summary>
    void SendRevocations()
    {
        if (identity is null || !OverTheWire) return;
        var tls = identity.Tls;
        Task.Run(() => new RevocationsRead(tls.Revoked.ToList())).PipeTo(Self, failure: e => new RevocationsUnread(e.GetBaseException().Message));
    }

    void Revocations(RevocationsRead read)
    {
        foreach (var node in nodes.Values)
        {
            if (!revokedSentTo.TryGetValue(node.NodeId, out var sent)) revokedSentTo[node.NodeId] = sent = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            var fresh = read.Serials.Where(s => !sent.Contains(s)).ToList();
            foreach (var batch in fresh.Chunk(RevokedCertificates.MaxPerMessage)) Tell(node.Agent, node.Session, new RevokedCertificates(batch));
            sent.UnionWith(fresh);
        }
    }

    /// <summary>One TrainRound per node, carrying the global weights once for all of that node's sampled clients.</summary>
    void FanOut(IEnumerable<string> targets)
    {
        var byNode = new Dictionary<IActorRef, (string NodeId, List<ClientTask> Tasks)>();
        foreach (var id in targets)
        {
            if (!clients.TryGetValue(id, out var client))
            {
                failed.Add(id); // gone since it was sampled
                continue;
            }
            var agent = nodes[client.NodeId].Agent;
            if (!byNode.TryGetValue(agent, out var node)) byNode[agent] = node = (client.NodeId, new List<ClientTask>());
            node.Tasks.Add(new ClientTask(id, Seeds.ForClient(settings.Seed, round, id)));
        }
        int r = round, a = attempt;
        var weights = global;
        ulong layoutHash = settings.Layout.Hash;
        Lazy<EncodedWeights>? encoded = null; // once per round for every remote node, off the actor's thread
        Lazy<Task<WeightHeader>>? header = null; // with a weight channel: the checksum, once per round for every remote node
        foreach (var (agent, (nodeId, tasks)) in byNode)
        {
            var session = nodes[nodeId].Session;
            if (WeightStream.IsLocal(agent))
            {
                Tell(agent, session, new TrainRound(r, a, tasks, plan.Config, WeightStream.Local(weights, layoutHash, r, "", 0)));
                continue;
            }
            var target = agent;
            var config = plan.Config;
            if (channel is { } ch)
            {
                // The vector stays where it is, read-only until the next round's offers are withdrawn. Each node gets
                // its own offer, pushed at once on its subscription while the checksum (which the TrainRound carries)
                // is computed beside it: the push does not wait for the hash, nor the node for the message and a request.
                var checksum = header ??= new Lazy<Task<WeightHeader>>(() => Task.Run(() => WeightStream.Header(layoutHash, r, "", 0, weights)));
                var offer = Task.Run(async () =>
                {
                    var (ticket, pushed) = ch.Offer(weights, nodeId);
                    return (WeightsPayload)new ChanneledWeights(await checksum.Value.ConfigureAwait(false), ch.Port, ticket, pushed);
                });
                foreach (var batch in tasks.Chunk(TasksPerMessage))
                    offer.PipeTo(Self, success: payload => new Dispatch(target, session, new TrainRound(r, a, batch, config, payload)),
                        failure: e => new DispatchFailed(r, a, batch, e.GetBaseException().Message));
                continue;
            }
            var chunks = encoded ??= new Lazy<EncodedWeights>(() => WeightStream.Encode(weights, layoutHash, r, "", 0));
            // Every message between nodes fits the 128,000-byte frame: a node with more sampled clients than one
            // message holds gets several TrainRounds, each with its own stream ref of the same chunks.
            foreach (var batch in tasks.Chunk(TasksPerMessage))
                Task.Run(() => WeightStream.Stream(chunks.Value, materializer))
                    .PipeTo(Self, success: payload => new Dispatch(target, session, new TrainRound(r, a, batch, config, payload)),
                        failure: e => new DispatchFailed(r, a, batch, e.GetBaseException().Message));
        }
        Timers.StartSingleTimer(DeadlineTimer, new RoundDeadline(round, attempt), settings.RoundTimeout);
        CheckProgress();
    }

    void Training()
    {
        Receive<Dispatch>(d =>
        {
            bool current = d.Message.Round == round && d.Message.Attempt == attempt;
            if (d.Message.Weights is ChanneledWeights c && !offered.Contains(c.Ticket))
            {
                if (current)
                {
                    // a fetch of an earlier round's weights from now on is told the round moved on
                    if (offeredFor != (round, attempt)) Withdraw();
                    offeredFor = (round, attempt);
                    offered.Add(c.Ticket);
                }
                else channel?.Withdraw(c.Ticket);
            }
            if (current) Tell(d.Agent, d.Session, d.Message);
        });
        Receive<DispatchFailed>(d =>
        {
            if (d.Round != round || d.Attempt != attempt) return;
            log.Warning("server: round {0}: cannot offer the global weights to {1}: {2}", round, string.Join(", ", d.Clients.Select(c => c.ClientId)), d.Reason);
            foreach (var c in d.Clients) MarkFailed(c.ClientId, $"the global weights could not be offered: {d.Reason}");
            CheckProgress();
        });
        Receive<UpdateSubmitted>(update =>
        {
            if (Rejects(update, Sender))
            {
                ReleaseUnread(update);
                return;
            }
            if (update.Weights is LocalWeights local)
            {
                AcceptUpdate(update, local.Weights);
                return;
            }
            if (update.Weights is ChanneledWeights uploaded)
            {
                // the node uploaded the vector before it sent this message, so it is here already (or never will be)
                float[] vector;
                try
                {
                    vector = channel?.Claim(uploaded) ?? throw new WeightTransferException("this server has no weight channel");
                }
                catch (WeightTransferException e)
                {
                    log.Warning("server: ignoring update from {0} for round {1}: {2}", update.ClientId, update.Round, e.Message);
                    MarkFailed(update.ClientId, $"unreadable ({e.Message})");
                    CheckProgress();
                    return;
                }
                AcceptUpdate(update, vector);
                return;
            }
            receiving.Add(update.ClientId);
            int r = round;
            WeightStream.Receive(update.Weights, materializer, WeightBuffers.Rent)
                .PipeTo(Self, success: w => new UpdateReceived(r, update, w), failure: e => new UpdateUnreadable(r, update, e.GetBaseException().Message));
        });
        Receive<UpdateReceived>(received =>
        {
            if (received.Round != round || !receiving.Remove(received.Update.ClientId))
            {
                log.Warning("server: discarding update from {0} for round {1}: it arrived after the round closed", received.Update.ClientId, received.Round);
                Reject(received.Update, "late (its download ended after the round closed)");
                WeightBuffers.Return(received.Weights);
                return;
            }
            AcceptUpdate(received.Update, received.Weights);
        });
        Receive<UpdateUnreadable>(u =>
        {
            if (u.Round != round || !receiving.Remove(u.Update.ClientId)) return;
            log.Warning("server: ignoring update from {0} for round {1}: {2}", u.Update.ClientId, u.Round, u.Reason);
            MarkFailed(u.Update.ClientId, $"unreadable ({u.Reason})");
            CheckProgress();
        });
        Receive<TrainingFailed>(failure =>
        {
            if (failure.Round != round || !sampled.Contains(failure.ClientId) || accepted.ContainsKey(failure.ClientId)) return;
            if (!IsFromClientOrItsNode(failure.ClientId, Sender)) return;
            log.Warning("server: round {0}: client {1} failed: {2}", round, failure.ClientId, failure.Reason);
            MarkFailed(failure.ClientId, $"failed ({failure.Reason})");
            CheckProgress();
        });
        Receive<RoundDeadline>(deadline =>
        {
            if (deadline.Round != round || deadline.Attempt != attempt) return;
            var silent = plan.Clients.Where(c => !accepted.ContainsKey(c) && !failed.Contains(c)).ToList();
            log.Warning("server: round {0} deadline ({1}) passed; no answer from {2}", round, settings.RoundTimeout, string.Join(", ", silent));
            foreach (var id in silent)
            {
                receiving.Remove(id); // a download still under way is discarded when it ends
                rejections.Add(new Rejection(round, id, $"no answer by the deadline ({Hosting.HoconText.Duration(settings.RoundTimeout)})"));
            }
            if (accepted.Count >= plan.MinimumUpdates) CloseRound();
            else RetryOrFail($"round {round}: {accepted.Count} of the required {plan.MinimumUpdates} updates arrived before the deadline");
        });
        Receive<RegisterClients>(Register);
        Common();
    }

    void AcceptUpdate(UpdateSubmitted update, float[] weights)
    {
        if (!AllFinite(weights))
        {
            log.Warning("server: ignoring update from {0} for round {1}: non-finite weights", update.ClientId, update.Round);
            WeightBuffers.Return(weights);
            MarkFailed(update.ClientId, "non-finite weights (NaN or infinity)");
            CheckProgress();
            return;
        }
        // one pass over the vector: 0.04–0.2 ms for the 2NN's 199,210 weights, 1.1–2.1 ms for mcmahan-cnn's 1,663,370
        // (on this shared 2-core machine). Always computed: rounds.csv's median_update_norm.
        double norm = UpdateNormRule.NormOfUpdate(weights, global);
        if (settings.MaxUpdateNorm is not null)
        {
            // counted as an answer now, judged when the round closes (ApplyNormRule)
            held[update.ClientId] = (update, weights);
            accepted[update.ClientId] = new AcceptedUpdate(update.ClientId, update.SampleCount, update.TrainLoss, update.TrainSeconds, norm);
            CheckProgress();
            return;
        }
        try
        {
            aggregator.Accept(new ClientUpdate(update.ClientId, weights, update.SampleCount, update.TrainLoss, update.TrainAccuracy));
        }
        catch (Exception e)
        {
            Fail($"round {round}: the strategy failed on the update from {update.ClientId}: {e.Message}");
            return;
        }
        accepted[update.ClientId] = new AcceptedUpdate(update.ClientId, update.SampleCount, update.TrainLoss, update.TrainSeconds, norm);
        CheckProgress();
    }

    /// <summary>True (and logged) for updates the round must not count: stale, unsolicited, duplicate, forged or malformed.</summary>
    bool Rejects(UpdateSubmitted update, IActorRef sender)
    {
        var reason = Rejection(update, sender);
        if (reason is null) return false;
        log.Warning("server: ignoring update from {0} for round {1}: {2}", update.ClientId, update.Round, reason);
        Reject(update, reason);
        bool answerToThisRound = update.Round == round && sampled.Contains(update.ClientId) && IsFrom(update.ClientId, sender)
            && !accepted.ContainsKey(update.ClientId) && !failed.Contains(update.ClientId) && !receiving.Contains(update.ClientId);
        if (answerToThisRound)
        {
            // a sampled client answered with something unusable: its answer for this round is a failure
            MarkFailed(update.ClientId, reason: null); // recorded above
            CheckProgress();
        }
        return true;
    }

    string? Rejection(UpdateSubmitted update, IActorRef sender)
    {
        var h = update.Weights.Header;
        if (update.Round != round) return $"stale (round {update.Round}, current {round})";
        if (!sampled.Contains(update.ClientId)) return "unsolicited (client not sampled this round)";
        if (from is not null && clients.TryGetValue(update.ClientId, out var host) && host.NodeId != from.NodeId)
            return $"forged (in the session of node {from.NodeId}, not of node {host.NodeId}, which hosts {update.ClientId})";
        if (!IsFrom(update.ClientId, sender)) return $"forged (sent by {sender.Path}, not by the actor registered as {update.ClientId})";
        if (accepted.ContainsKey(update.ClientId) || receiving.Contains(update.ClientId)) return "duplicate";
        if (failed.Contains(update.ClientId)) return "late (already counted as failed in this attempt)";
        if (h.LayoutHash != settings.Layout.Hash) return $"wrong layout ({h.LayoutHash:x16}, model {settings.ModelName} is {settings.Layout.Hash:x16})";
        if (h.Length != settings.Layout.TotalLength) return $"malformed ({h.Length} weights, model has {settings.Layout.TotalLength})";
        if (h.Round != update.Round || h.ClientId != update.ClientId || h.SampleCount != update.SampleCount)
            return $"inconsistent (weights are labelled round {h.Round}, client {h.ClientId}, {h.SampleCount} samples)";
        if (clients[update.ClientId].Samples != update.SampleCount)
            return $"inconsistent (claims {update.SampleCount} samples, registered {clients[update.ClientId].Samples})";
        return null;
    }

    bool IsFrom(string clientId, IActorRef sender) => clients.TryGetValue(clientId, out var c) && c.Ref.Equals(sender) && InItsSession(c);

    bool IsFromClientOrItsNode(string clientId, IActorRef sender) =>
        clients.TryGetValue(clientId, out var c) && (c.Ref.Equals(sender) || nodes[c.NodeId].Agent.Equals(sender)) && InItsSession(c);

    /// <summary>The message being handled came in the session of <paramref name="client"/>'s node (or from this process).</summary>
    bool InItsSession(RegisteredClient client) => from is null || from.NodeId == client.NodeId;

    static bool AllFinite(float[] weights)
    {
        foreach (var w in weights)
            if (!float.IsFinite(w)) return false;
        return true;
    }

    void MarkFailed(string clientId, string? reason)
    {
        if (accepted.ContainsKey(clientId)) return;
        failed.Add(clientId);
        if (reason is not null) rejections.Add(new Rejection(round, clientId, reason));
    }

    /// <summary>Records an update the server will not count, with the round it was labelled with.</summary>
    void Reject(UpdateSubmitted update, string reason)
    {
        if (!finished) rejections.Add(new Rejection(update.Round, update.ClientId, reason));
    }

    void CheckProgress()
    {
        // accepted and failed are disjoint subsets of the sampled clients, so counting them is enough
        if (accepted.Count + failed.Count < sampled.Count) return;
        if (accepted.Count >= plan.MinimumUpdates) CloseRound();
        else RetryOrFail($"round {round}: only {accepted.Count} of the required {plan.MinimumUpdates} sampled clients succeeded");
    }

    void RetryOrFail(string reason)
    {
        if (clients.Count < settings.MinClients)
        {
            WaitForClients($"{reason}, and only {clients.Count} clients are registered");
            return;
        }
        if (attempt >= settings.MaxRoundAttempts)
        {
            Fail($"{reason} (after {attempt} attempt{(attempt == 1 ? "" : "s")}).");
            return;
        }
        attempt++;
        var retry = plan.Clients.Where(c => !accepted.ContainsKey(c)).ToList();
        log.Warning("server: {0}; attempt {1} of {2} asks {3} again", reason, attempt, settings.MaxRoundAttempts, string.Join(", ", retry));
        failed.Clear();
        receiving.Clear();
        FanOut(retry);
    }

    /// <summary>
    /// The norm rule at the close of a round: refuses every held update whose ‖Δ‖ exceeds k × the median of the round's
    /// (<see cref="roundMedianNorm"/>), then moves the rest to <paramref name="kept"/> in client-id order, for the
    /// aggregation thread to hand to the strategy (<see cref="CloseRound"/>), so the result depends on the set of updates
    /// and never on their arrival order. False when too few remain and the round was retried or failed.
    /// </summary>
    bool ApplyNormRule(double k, List<ClientUpdate> kept)
    {
        foreach (var id in held.Keys.Order(StringComparer.Ordinal).ToList())
        {
            if (UpdateNormRule.Rejection(accepted[id].Norm, k, roundMedianNorm) is not { } tooLarge) continue;
            log.Warning("server: ignoring update from {0} for round {1}: {2}", id, round, tooLarge);
            WeightBuffers.Return(held[id].Weights);
            held.Remove(id);
            accepted.Remove(id);
            MarkFailed(id, tooLarge);
        }
        if (accepted.Count < plan.MinimumUpdates)
        {
            // the updates kept stay held: the next close judges them again, with the answers the retry brings
            RetryOrFail($"round {round}: {accepted.Count} of the required {plan.MinimumUpdates} updates are within the norm bound");
            return false;
        }
        foreach (var id in held.Keys.Order(StringComparer.Ordinal).ToList())
        {
            var (update, weights) = held[id];
            held.Remove(id);
            kept.Add(new ClientUpdate(id, weights, update.SampleCount, update.TrainLoss, update.TrainAccuracy));
        }
        return true;
    }

    void ReleaseHeld()
    {
        foreach (var (_, weights) in held.Values) WeightBuffers.Return(weights);
        held.Clear();
    }

    /// <summary>Abandons the current round's aggregation (the updates it folded are dropped with it).</summary>
    void ReleaseRound()
    {
        ReleaseHeld();
        training = false;
        accepted.Clear();
        failed.Clear();
        receiving.Clear();
        sampled = new HashSet<string>();
    }

    // ---- aggregating ---------------------------------------------------------------------------------

    void CloseRound()
    {
        roundMedianNorm = UpdateNormRule.Median(accepted.Values.Select(u => u.Norm));
        var kept = new List<ClientUpdate>();
        if (settings.MaxUpdateNorm is { } k && !ApplyNormRule(k, kept)) return;
        Timers.Cancel(DeadlineTimer);
        training = false;
        trainingTime = roundClock.Elapsed;
        Become(Aggregating);
        var closingAggregator = aggregator;
        int closing = round;
        // A robust rule can cost O(n²·d): it gets a thread of its own, never one of the pool the actors run on. The norm
        // rule's kept updates are folded there too: all n of them at once, n·d multiply-adds (49 ms for 100 mcmahan-cnn
        // updates in `fedavg bench aggregate`, docs/benchmarks.md), which on the actor's thread held its every message.
        Task.Factory.StartNew(() =>
        {
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < kept.Count; i++)
            {
                try
                {
                    closingAggregator.Accept(kept[i]);
                }
                catch (Exception e)
                {
                    foreach (var unread in kept.Skip(i + 1)) WeightBuffers.Return(unread.Weights);
                    throw new KeptUpdateRefused(kept[i].ClientId, e);
                }
            }
            var next = closingAggregator.Complete();
            return new Aggregated(closing, next, clock.Elapsed);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .PipeTo(Self, failure: e => new RoundClosingFailed(closing, "aggregation", e));
    }

    /// <summary>The strategy threw on a kept update of the norm rule (folded on the aggregation thread).</summary>
    sealed class KeptUpdateRefused(string clientId, Exception inner) : Exception(inner.Message, inner)
    {
        public string ClientId => clientId;
    }

    void Aggregating()
    {
        Receive<Aggregated>(done =>
        {
            global = done.Weights;
            Become(() => Evaluating(done.Elapsed));
            var weights = global;
            int closing = round;
            // The strategy's state is taken on the checkpoint's thread: FedAdam's m and v are two model sizes, a new
            // 13.3 MB array filled per round for mcmahan-cnn (22-117 ms, median 45, on this loaded 2-core machine), which
            // on the actor's thread held its every message. The strategy is not called again before Evaluated, which
            // waits for the save.
            Func<Checkpoint>? checkpoint = settings.CheckpointPath is not null
                ? () => new Checkpoint(settings.ModelName, settings.Layout, closing, settings.Seed, weights, strategy.Name, strategy.SaveState())
                : null;
            EvaluateAndCheckpoint(weights, checkpoint, settings.CheckpointPath)
                .PipeTo(Self, success: r => new Evaluated(closing, r.Evaluation, r.Elapsed),
                    failure: e => new RoundClosingFailed(closing, "evaluation or checkpoint", e));
        });
        ClosingFailures();
        Receive<RegisterClients>(Register);
        Common();
    }

    void ClosingFailures() =>
        Receive<RoundClosingFailed>(f => Fail(f.Error is KeptUpdateRefused refused
            ? $"round {f.Round}: the strategy failed on the update from {refused.ClientId}: {refused.Message}" // as when folded on arrival
            : $"round {f.Round}: {f.Step} failed: {f.Error.GetBaseException().Message}"));

    async Task<(Evaluation Evaluation, TimeSpan Elapsed)> EvaluateAndCheckpoint(float[] weights, Func<Checkpoint>? checkpoint, string? path)
    {
        var clock = Stopwatch.StartNew();
        // Both only read the new weights; the file's fsync overlaps the trainers' forward passes. The save waits on
        // the disk, so it gets a thread of its own rather than one of the pool's that the actors run on.
        var saved = checkpoint is null
            ? Task.CompletedTask
            : Task.Factory.StartNew(() => checkpoint().Save(path!), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var evaluation = evaluate(weights);
        await Task.WhenAll(evaluation, saved).ConfigureAwait(false);
        return (evaluation.Result, clock.Elapsed);
    }

    // ---- evaluating ----------------------------------------------------------------------------------

    void Evaluating(TimeSpan aggregationTime)
    {
        Receive<Evaluated>(done =>
        {
            var ordered = accepted.Values.OrderBy(u => u.ClientId, StringComparer.Ordinal).ToList();
            long samples = ordered.Sum(u => (long)u.SampleCount);
            double meanTrainLoss = ordered.Sum(u => u.TrainLoss * u.SampleCount) / samples;
            lastAccuracy = done.Evaluation.Accuracy;
            var metrics = new RoundMetrics(round, plan.Clients.Count, accepted.Count, plan.Clients.Count - accepted.Count, attempt,
                done.Evaluation.Loss, done.Evaluation.Accuracy, meanTrainLoss,
                trainingTime.TotalSeconds, ordered.Sum(u => u.TrainSeconds), aggregationTime.TotalSeconds,
                done.Elapsed.TotalSeconds, roundClock.Elapsed.TotalSeconds,
                // in client-id order (a client's own in arrival order), so the record does not depend on who answered first
                Rejected: rejections.OrderBy(r => r.ClientId, StringComparer.Ordinal).ToList(),
                Faults: faultsFired.OrderBy(f => f.ClientId, StringComparer.Ordinal).ThenBy(f => f.Behaviour, StringComparer.Ordinal).ToList(),
                MedianUpdateNorm: roundMedianNorm);
            recordingFaults = false;
            log.Info("server: round {0} done: test accuracy {1:F4}, loss {2:F4}, {3}/{4} clients, {5:F2}s",
                round, metrics.TestAccuracy, metrics.TestLoss, metrics.Succeeded, metrics.Sampled, metrics.RoundSeconds);
            observer.Tell(new RoundCompleted(metrics));

            if (settings.TargetAccuracy is { } target && lastAccuracy >= target) Complete(round);
            else if (round >= settings.Rounds) Complete(null);
            else if (clients.Count < settings.MinClients) WaitForClients($"only {clients.Count} clients are registered after round {round}");
            else StartRound(round + 1);
        });
        ClosingFailures();
        Receive<RegisterClients>(Register);
        Common();
    }

    // ---- the end -------------------------------------------------------------------------------------

    void Complete(int? targetReachedAt)
    {
        Timers.CancelAll();
        log.Info("server: run completed after round {0}", round);
        observer.Tell(new RunCompleted(round, lastAccuracy, targetReachedAt, global));
        End(new RunFinished(true, $"completed after round {round}"));
    }

    void Fail(string reason)
    {
        Timers.CancelAll();
        log.Error("server: run failed: {0}", reason);
        observer.Tell(new RunFailed(round, reason));
        End(new RunFinished(false, reason));
    }

    void End(RunFinished finish)
    {
        ReleaseHeld();
        finished = true;
        training = false;
        Withdraw();
        foreach (var node in nodes.Values) Tell(node.Agent, node.Session, finish);
        Become(Finished);
    }

    void Finished()
    {
        Receive<RegisterClients>(r => Answer(new RunFinished(true, "the run is over")));
        Receive<UpdateSubmitted>(u => ReleaseUnread(u));
        Receive<UpdateReceived>(u => WeightBuffers.Return(u.Weights));
        // the nodes leave once told the run is over: nothing to report
        Receive<Terminated>(_ => { });
        Receive<ClusterEvent.UnreachableMember>(_ => { });
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            foreach (var node in nodes.Values.Where(n => n.Agent.Path.Address.Equals(m.Member.Address)).ToList()) ForgetNode(node.NodeId);
            deferred.RemoveWhere(d => d.From.Equals(m.Member.Address));
            proofBudget.Forget(m.Member.Address);
        });
        Common();
    }

    // ---- in every state ------------------------------------------------------------------------------

    void Common()
    {
        Receive<JoinFederation>(Join);
        Receive<FaultsFired>(RecordFaults);
        Receive<UpdateSubmitted>(u =>
        {
            log.Warning("server: ignoring update from {0} for round {1}: round {2} is closed", u.ClientId, u.Round, round);
            Reject(u, $"late (round {round} is closed)");
            ReleaseUnread(u);
        });
        Receive<UpdateReceived>(u => WeightBuffers.Return(u.Weights));
        Receive<UpdateUnreadable>(_ => { });
        Receive<TrainingFailed>(_ => { });
        Receive<RoundDeadline>(_ => { });
        Receive<WaitExpired>(_ => { });
        Receive<Dispatch>(_ => { });
        Receive<DispatchFailed>(_ => { });
        Receive<Terminated>(t => ClientGone(t.ActorRef));
        Receive<NodeRevoked>(Revoked);
        Receive<RevocationsRead>(Revocations);
        Receive<RevocationsUnread>(f => log.Warning("server: cannot read the revoked list to send it to the nodes: {0}", f.Reason));
        Receive<ClusterEvent.UnreachableMember>(u => NodeLost(u.Member.Address, "unreachable", forget: false));
        Receive<ClusterEvent.MemberRemoved>(m => NodeLost(m.Member.Address, "removed from the cluster", forget: true));
        Receive<ClusterEvent.ReachableMember>(m =>
        {
            foreach (var node in nodes.Values.Where(n => n.Agent.Path.Address.Equals(m.Member.Address)))
            {
                Event($"node {node.NodeId} at {m.Member.Address} is reachable again; asking it to register its clients");
                Tell(node.Agent, node.Session, RegisterAgain.Instance);
            }
        });
    }

    /// <summary>
    /// Faults a client says were injected into it: counted from the actor sampled (or now registered) under that id, for
    /// the round whose record is still open. The client sends the report before its answer, so a round's list is complete
    /// when the round closes on that answer, whichever node the client lives on.
    /// </summary>
    void RecordFaults(FaultsFired report)
    {
        if (report.Faults.Any(f => f.ClientId != report.ClientId))
        {
            log.Warning("server: ignoring a fault report from {0}: it names another client than {1}", Sender.Path, report.ClientId);
            return;
        }
        foreach (var late in report.Faults.Where(f => !recordingFaults || f.Round != round))
            log.Info("server: fault {0} of round {1} reported after that round's record was written", late, late.Round);
        var current = report.Faults.Where(f => recordingFaults && f.Round == round).ToList();
        if (current.Count == 0) return;
        bool fromSampled = sampled.Contains(report.ClientId)
                           && (IsFrom(report.ClientId, Sender) || roster.TryGetValue(report.ClientId, out var was) && was.Ref.Equals(Sender) && InItsSession(was));
        if (!fromSampled)
        {
            log.Warning("server: ignoring a fault report for {0} from {1}: not the actor sampled under that id in round {2}",
                report.ClientId, Sender.Path, round);
            return;
        }
        int already = faultsFired.Count(f => f.ClientId == report.ClientId);
        foreach (var fault in current)
        {
            if (already++ >= FaultsFired.MaxPerClientAndRound)
            {
                log.Warning("server: {0} reported more than {1} faults in round {2}; not recording {3}", report.ClientId,
                    FaultsFired.MaxPerClientAndRound, round, fault.Behaviour);
                continue;
            }
            faultsFired.Add(fault);
        }
    }

    /// <summary>An update whose weights we will not read: a local vector goes back to the pool at once, an upload is dropped.</summary>
    void ReleaseUnread(UpdateSubmitted update)
    {
        if (update.Weights is LocalWeights local) WeightBuffers.Return(local.Weights);
        if (update.Weights is ChanneledWeights uploaded) channel?.Discard(uploaded);
    }

    void Withdraw()
    {
        foreach (var ticket in offered) channel?.Withdraw(ticket);
        offered.Clear();
    }

    void Join(JoinFederation join)
    {
        var address = Sender.Path.Address;
        if (identity is not null && !IsAdmitted(join) && !proofBudget.TryCheck(address))
        {
            drops.Warn(address.ToString(), "join flood", Hosting.ProofBudget.Over("server", address, "a node asks every 2 s"));
            return;
        }
        var reason = JoinRejection(join);
        if (reason is not null)
        {
            // one line per sender and reason every 10 s: any member can send joins at wire speed
            drops.Warn(address.ToString(), $"refused join: {reason}", $"server: refusing node {join.NodeId} at {address}: {reason}");
            Tell(Sender, join.Session, new JoinRefused(reason));
            return;
        }
        if (!nodes.TryGetValue(join.NodeId, out var known) || !known.Agent.Equals(Sender))
        {
            if (known is not null && HeldByALiveMember(known, Sender))
            {
                // Not answered: the node asks again every 2 s (Retry) and is admitted once the member holding the id is
                // unreachable or gone. A node restarted on a new port after a SIGKILL waits for the failure detector
                // (seconds); a second node started with the same --node-id (with TLS: the same certificate) waits for good.
                if (deferred.Add((join.NodeId, Sender.Path.Address)))
                    log.Warning("server: not admitting node {0} from {1} yet: node {0} at {2} is up and reachable, and it keeps its " +
                                "clients until that member is unreachable or gone (two nodes started with one " + (identity is null ? "--node-id?)" : "certificate?)"),
                        join.NodeId, Sender.Path.Address, known.Agent.Path.Address);
                Tell(Sender, join.Session, new JoinHeldBack($"node {join.NodeId} at {known.Agent.Path.Address} is up and reachable; " +
                    "this node is admitted once that member is unreachable or gone (is another node running with the same " +
                    (identity is null ? "--node-id?)" : "certificate? With TLS a node's id is its certificate's name)")));
                return;
            }
            deferred.Remove((join.NodeId, Sender.Path.Address));
            if (known is not null) DropClientsOf(join.NodeId, "replaced by a new incarnation of its node");
            SetNode(new NodeInfo(join.NodeId, Sender, join.Request, join.Session));
            Event($"node {join.NodeId} joined from {Sender.Path.Address} with clients {join.Request}");
        }
        else if (known.Session != join.Session)
        {
            // A node keeps its session for its life, and a new incarnation is a new actor: this join names the node's
            // own actor as its sender, in another session. Answered in it, the node would drop the answer anyway.
            drops.Warn(Sender.Path.Address.ToString(), "join in another session",
                $"server: ignoring a join as node {join.NodeId} from {Sender.Path}: that node joined in another session, so it did not send this one");
            return;
        }
        if (finished) Tell(Sender, join.Session, new RunFinished(true, "the run is over"));
        else
        {
            Tell(Sender, join.Session, new Welcome(spec, identity?.ProveWelcome(join, ((ExtendedActorSystem)Context.System).Provider.DefaultAddress)));
            SendRevocations();
        }
    }

    /// <summary>
    /// Whether the node id of <paramref name="known"/> still belongs to a member that is up and reachable at another
    /// address than <paramref name="claimant"/>'s. Without this, any member could take a live node's id and its clients
    /// (the honest node would wait for rounds that never come). A new incarnation at the same address is never held
    /// back: Akka removes the old member before the new one joins.
    /// </summary>
    bool HeldByALiveMember(NodeInfo known, IActorRef claimant)
    {
        var address = known.Agent.Path.Address;
        if (!IsCluster || address.Equals(claimant.Path.Address)) return false;
        var state = Cluster.Get(Context.System).State;
        return state.Members.Any(m => m.Address.Equals(address) && m.Status is MemberStatus.Up or MemberStatus.WeaklyUp)
               && !state.Unreachable.Any(m => m.Address.Equals(address));
    }

    /// <summary>
    /// A repeated join of an admitted node (every 2 s until answered, and after RegisterAgain): it names that node's
    /// session, which only that node knows, from its actor, so its proof was checked when it was admitted.
    /// </summary>
    bool IsAdmitted(JoinFederation join) =>
        bySession.TryGetValue(join.Session, out var holder) && holder.NodeId == join.NodeId && holder.Agent.Equals(Sender);

    string? JoinRejection(JoinFederation join)
    {
        if (revokedAddresses.Contains(Sender.Path.Address)) return "a node at this address was removed from the federation: its certificate is revoked";
        if (join.Federation != spec.Federation) return $"it asks for federation '{join.Federation}', this server runs '{spec.Federation}'";
        if (string.IsNullOrWhiteSpace(join.NodeId)) return "it has no node id";
        // a session is one node's secret (Messages/Protocol.cs): the same one under another id is not that node's
        if (bySession.TryGetValue(join.Session, out var holder) && holder.NodeId != join.NodeId) return "its session is another node's";
        if (!IsAdmitted(join) && identity?.JoinRejection(join, Sender.Path.Address) is { } unproven) return unproven;
        switch (join.Request)
        {
            case ClientRange r:
                if (r.First < 0 || r.Last < r.First || r.Last >= spec.Clients)
                    return $"clients {r} are outside 0..{spec.Clients - 1}, the {spec.Clients} clients of this run";
                foreach (var other in nodes.Values)
                    if (other.NodeId != join.NodeId && other.Request is ClientRange o && o.First <= r.Last && r.First <= o.Last
                        && clients.Values.Any(c => c.NodeId == other.NodeId))
                        return $"clients {r} overlap clients {o} of node {other.NodeId}";
                return null;
            case OwnData d:
                if (d.SampleCount <= 0) return $"its own data has {d.SampleCount} samples";
                if (clients.TryGetValue(join.NodeId, out var c) && c.NodeId != join.NodeId) return $"client id {join.NodeId} is taken";
                return null;
            default:
                return "it asks for clients in a form this server does not know";
        }
    }

    void Register(RegisterClients registration)
    {
        var sender = Sender;
        var reason = RegistrationRejection(registration, sender);
        if (reason is not null)
        {
            log.Warning("server: refusing the clients of node {0}: {1}", registration.NodeId, reason);
            Answer(new RegistrationRefused(reason));
            return;
        }
        foreach (var entry in registration.Clients)
        {
            if (clients.TryGetValue(entry.ClientId, out var known) && known.Ref.Equals(entry.Client)) continue;
            clients[entry.ClientId] = new RegisteredClient(entry.Client, entry.SampleCount, registration.NodeId);
            Context.Watch(entry.Client);
        }
        Event($"node {registration.NodeId} registered {registration.Clients.Count} clients ({clients.Count} in all) " +
              (training ? $"while round {round} trains: eligible from round {round + 1}" : $"before round {round + 1}"));
        Answer(new Registered(registration.NodeId, registration.Clients.Count));
    }

    string? RegistrationRejection(RegisterClients registration, IActorRef sender)
    {
        if (revokedAddresses.Contains(sender.Path.Address)) return "a node at this address was removed from the federation: its certificate is revoked";
        if (registration.LayoutHash != settings.Layout.Hash)
            return $"its model layout {registration.LayoutHash:x16} is not this run's {settings.ModelName} ({settings.Layout.Hash:x16}): " +
                   "the node was built with another model or version";
        if (!nodes.TryGetValue(registration.NodeId, out var node) || !node.Agent.Equals(sender))
            return $"node {registration.NodeId} has not joined (or joined from another address)";
        if (from is not null && from.NodeId != node.NodeId)
            return $"it came in the session of node {from.NodeId}, not of node {node.NodeId}";
        var allowed = node.Request switch
        {
            ClientRange r => Enumerable.Range(r.First, r.Last - r.First + 1).Select(k => ClientIds.Of(k, spec.Clients)).ToHashSet(),
            _ => new HashSet<string> { registration.NodeId },
        };
        foreach (var entry in registration.Clients)
        {
            if (!allowed.Contains(entry.ClientId)) return $"client {entry.ClientId} is not one of the clients it joined with ({node.Request})";
            if (entry.SampleCount <= 0) return $"client {entry.ClientId} has {entry.SampleCount} samples";
            if (clients.TryGetValue(entry.ClientId, out var other) && other.NodeId != registration.NodeId && nodes.ContainsKey(other.NodeId))
                return $"client {entry.ClientId} is registered by node {other.NodeId}";
        }
        return null;
    }

    void ClientGone(IActorRef gone)
    {
        var entry = clients.FirstOrDefault(c => c.Value.Ref.Equals(gone));
        if (entry.Key is null) return;
        clients.Remove(entry.Key);
        log.Warning("server: client {0} is gone", entry.Key);
        LoseFromRound([entry.Key], "its actor stopped");
    }

    /// <summary>
    /// A node whose certificate was revoked while it was a member (the weight channel saw it at a push or a request):
    /// it is told why and downed, and its clients leave the federation at once, so no later round samples them. Before,
    /// it stayed a member and its clients failed every round they were sampled in.
    /// </summary>
    void Revoked(NodeRevoked revoked)
    {
        if (!nodes.TryGetValue(revoked.NodeId, out var node)) return; // gone already, or told twice
        var address = node.Agent.Path.Address;
        revokedAddresses.Add(address);
        log.Warning("server: removing node {0} at {1} from the federation: {2}", revoked.NodeId, address, revoked.Reason);
        // told before it is downed: the message leaves now, the down with the next gossip
        Tell(node.Agent, node.Session, new JoinRefused($"{revoked.Reason}; this node is removed from the federation"));
        NodeLost(address, "removed from the federation (its certificate is revoked)", forget: true);
        if (IsCluster) Cluster.Get(Context.System).Down(address);
    }

    void NodeLost(Address address, string how, bool forget)
    {
        foreach (var node in nodes.Values.Where(n => n.Agent.Path.Address.Equals(address)).ToList())
        {
            Event($"node {node.NodeId} at {address} is {how}; its clients are dropped{(training ? $" from round {round}" : "")}");
            DropClientsOf(node.NodeId, how);
            if (forget) ForgetNode(node.NodeId);
        }
        if (forget) deferred.RemoveWhere(d => d.From.Equals(address)); // a held-back node that gave up and left
        if (forget) proofBudget.Forget(address);
    }

    void SetNode(NodeInfo node)
    {
        if (nodes.TryGetValue(node.NodeId, out var replaced)) bySession.Remove(replaced.Session);
        nodes[node.NodeId] = node;
        bySession[node.Session] = node;
        revokedSentTo.Remove(node.NodeId); // a new incarnation holds only what its revoked.txt holds
    }

    void ForgetNode(string nodeId)
    {
        if (nodes.Remove(nodeId, out var node)) bySession.Remove(node.Session);
        revokedSentTo.Remove(nodeId);
    }

    void DropClientsOf(string nodeId, string why)
    {
        var lost = clients.Where(c => c.Value.NodeId == nodeId).Select(c => c.Key).ToList();
        foreach (var id in lost)
        {
            Context.Unwatch(clients[id].Ref);
            clients.Remove(id);
        }
        if (lost.Count > 0) log.Info("server: {0} clients of node {1} dropped ({2})", lost.Count, nodeId, why);
        LoseFromRound(lost, $"its node was lost ({why})");
    }

    /// <summary>Clients that can no longer answer this round count as failed at once, not at the deadline.</summary>
    void LoseFromRound(IReadOnlyCollection<string> lost, string why)
    {
        if (!training) return; // the other states have closed the round already
        bool changed = false;
        foreach (var id in lost)
        {
            if (!sampled.Contains(id) || accepted.ContainsKey(id) || failed.Contains(id)) continue;
            receiving.Remove(id);
            MarkFailed(id, why);
            changed = true;
        }
        if (changed) CheckProgress();
    }

    /// <summary>A line for the host's console: a node joined, registered, or was lost.</summary>
    void Event(string text)
    {
        log.Info("server: {0}", text);
        observer.Tell(new ServerEvent(text));
    }

    sealed record RegisteredClient(IActorRef Ref, int Samples, string NodeId);
    sealed record NodeInfo(string NodeId, IActorRef Agent, ClientRequest Request, Guid Session);
    sealed record AcceptedUpdate(string ClientId, int SampleCount, double TrainLoss, double TrainSeconds, double Norm);
    sealed record RoundDeadline(int Round, int Attempt) : INoSerializationVerificationNeeded;
    sealed record WaitExpired(int Round) : INoSerializationVerificationNeeded;
    sealed record NodeRevoked(string NodeId, string Reason) : INoSerializationVerificationNeeded;
    sealed record RevocationsRead(IReadOnlyList<string> Serials) : INoSerializationVerificationNeeded;
    sealed record RevocationsUnread(string Reason) : INoSerializationVerificationNeeded;
    sealed record Dispatch(IActorRef Agent, Guid Session, TrainRound Message) : INoSerializationVerificationNeeded;
    sealed record DispatchFailed(int Round, int Attempt, IReadOnlyList<ClientTask> Clients, string Reason) : INoSerializationVerificationNeeded;
    sealed record UpdateReceived(int Round, UpdateSubmitted Update, float[] Weights) : INoSerializationVerificationNeeded;
    sealed record UpdateUnreadable(int Round, UpdateSubmitted Update, string Reason) : INoSerializationVerificationNeeded;
    sealed record Aggregated(int Round, float[] Weights, TimeSpan Elapsed) : INoSerializationVerificationNeeded;
    sealed record Evaluated(int Round, Evaluation Evaluation, TimeSpan Elapsed) : INoSerializationVerificationNeeded;
    sealed record RoundClosingFailed(int Round, string Step, Exception Error) : INoSerializationVerificationNeeded;
}

/// <summary>From the server to the host that started it: a line of progress about membership (never leaves the process).</summary>
public sealed record ServerEvent(string Text) : INoSerializationVerificationNeeded;
