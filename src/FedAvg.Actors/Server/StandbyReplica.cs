using Akka.Actor;
using Akka.Event;
using Akka.Streams;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Runtime;

namespace FedAvg.Actors.Server;

/// <summary>What a standby server's replica tells its host.</summary>
public abstract record StandbyReport;
/// <summary>A line of progress for the console.</summary>
public sealed record StandbyEvent(string Text) : StandbyReport;
/// <summary>A round the active server completed, as its record says.</summary>
public sealed record StandbyRound(RoundMetrics Metrics) : StandbyReport;
/// <summary>The checkpoint after <paramref name="Round"/> is this standby's own now (written to its run directory).</summary>
public sealed record StandbyKept(int Round) : StandbyReport;
/// <summary>The active server would not have this standby.</summary>
public sealed record StandbyRefusedBy(string Reason) : StandbyReport;
/// <summary>The active server ended the run (after its last replica).</summary>
public sealed record StandbyRunOver(bool Completed, string Reason) : StandbyReport;

/// <summary>
/// A standby server's side of the replication (<see cref="StandbyFeed"/> is the other): asks the active server's feed
/// to replicate, then keeps each round's record and checkpoint, the checkpoint checked (its length and checksum on the
/// wire, then its own sha256, model and strategy) before it is written, atomically, where this standby's coordinator
/// would resume from. A replica that fails its checks is logged and dropped: the previous one stays. With TLS, the
/// certificates the active server revoked are revoked here too (<see cref="RevokedCertificates"/>): at once in this
/// process, and added to the revoked.txt beside this standby's ca.crt, so they stay revoked after a restart. Only the
/// feed that accepted this standby is heard; anything else sent to it is logged and dropped.
/// </summary>
public sealed class StandbyReplica : ReceiveActor, IWithStash, IWithTimers
{
    ActorSelection feed;
    readonly StandbyJoin join;
    readonly string checkpointPath;
    readonly string model;
    readonly string strategy;
    readonly Action<StandbyReport> report;
    readonly ILoggingAdapter log = Context.GetLogger();
    // feed messages dropped for their session or sender, one line per sender and kind every 10 s (Transfer/PeerWarnings.cs)
    readonly PeerWarnings drops;
    readonly TimeSpan joinTimeout;
    readonly Hosting.TransportSecurity? security;
    DateTime started = DateTime.UtcNow; // of the join under way
    IMaterializer materializer = null!;
    string from = "";
    IActorRef active = ActorRefs.Nobody; // the feed that accepted this standby
    int kept; // the round of the checkpoint this standby holds (0: none)
    int reported; // the last round whose record this standby reported
    CancellationTokenSource? pull; // of the replica being pulled: cancelled when it is given up
    readonly HashSet<Address> lost = new(); // servers this standby stood by for, lost

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="joinTimeout">How long the active server may take to answer the join: a member that never does is no
    /// fedavg server of this version (or its feed is not up), and the standby gives up with that reason.</param>
    /// <param name="security">This standby's TLS, whose revoked list takes the active server's revocations; null in plaintext.</param>
    public StandbyReplica(Address active, StandbyJoin join, string checkpointPath, string model, string strategy, Action<StandbyReport> report,
        TimeSpan? joinTimeout = null, Hosting.TransportSecurity? security = null)
    {
        this.joinTimeout = joinTimeout ?? TimeSpan.FromSeconds(30);
        this.security = security;
        feed = Context.ActorSelection(new RootActorPath(active) / "user" / Hosting.ClusterHosting.StandbyFeedName);
        this.join = join;
        this.checkpointPath = checkpointPath;
        this.model = model;
        this.strategy = strategy;
        this.report = report;
        drops = new PeerWarnings(line => log.Warning("{0}", line), "standby");
        Joining();
    }

    public static Props Props(Address active, StandbyJoin join, string checkpointPath, string model, string strategy, Action<StandbyReport> report,
        TimeSpan? joinTimeout = null, Hosting.TransportSecurity? security = null) =>
        Akka.Actor.Props.Create(() => new StandbyReplica(active, join, checkpointPath, model, strategy, report, joinTimeout, security));

    /// <summary>How long one checkpoint may take to arrive: 20 MB (mcmahan-cnn with FedAdam's moments) at 10 Mbit/s
    /// takes 16 s. A pull that takes longer is given up, and the next round's replica comes instead.</summary>
    public static readonly TimeSpan PullTimeout = TimeSpan.FromMinutes(2);

    protected override void PreStart()
    {
        materializer = Context.System.Materializer();
        SendJoin();
    }

    /// <summary>
    /// Over the wire the feed's messages count only in this standby's session (its <see cref="StandbyJoin"/>'s): Akka's
    /// sender proves nothing (Messages/Protocol.cs), so without it any member could hand this standby a checkpoint to
    /// take over from, or end it. One in another session, or outside one, is dropped with a warning.
    /// </summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        if (InSession.Admit(ref message, join.Session, InSession.Needed(Context.System), out bool outside)) return base.AroundReceive(receive, message);
        Dropped(message, outside ? "outside this standby's session" : "in another session than this standby's");
        return true;
    }

    void Dropped(object message, string how) =>
        drops.Warn(Sender.Path.Address.ToString(), $"{message.GetType().Name} {how}",
            $"standby: ignoring a {message.GetType().Name} from {Sender.Path}: it came {how}, so no feed this standby joined sent it");

    // A replica stopped while it pulls (the coordinator now runs here) must never write the file after that: the
    // coordinator saves its own checkpoints there.
    protected override void PostStop()
    {
        pull?.Cancel();
        drops.Dispose();
    }

    void SendJoin()
    {
        feed.Tell(join);
        Timers.StartSingleTimer(Retry.Timer, Retry.Instance, Retry.Every);
    }

    void Joining()
    {
        Receive<Retry>(_ =>
        {
            if (DateTime.UtcNow - started < joinTimeout)
            {
                SendJoin();
                return;
            }
            report(new StandbyRefusedBy($"it did not answer the standby's join within {joinTimeout.TotalSeconds:F0} s " +
                                        "(is it a `fedavg server` of this version?)"));
            Context.Stop(Self);
        });
        Receive<StandbyAccepted>(Accepted);
        Receive<StandbyRefused>(Refused);
        ReceiveAny(_ => Stash.Stash()); // a replica that overtook the answer
    }

    void Accepted(StandbyAccepted accepted)
    {
        Timers.Cancel(Retry.Timer);
        from = Sender.Path.Address.ToString();
        active = Sender;
        Context.Watch(Sender);
        report(new StandbyEvent($"standing by for the server at {from}" +
                                (accepted.Round > 0 ? $" (its checkpoint is of round {accepted.Round})" : "")));
        Become(Replicating);
    }

    void Refused(StandbyRefused refused)
    {
        Timers.Cancel(Retry.Timer);
        report(new StandbyRefusedBy(refused.Reason));
        Context.Stop(Self);
    }

    /// <summary>
    /// The server this standby stood by for is lost. The coordinator moves to the oldest `server` member left (the
    /// singleton's rule): if that is this standby, the coordinator starts here and this replica's work is done; if it
    /// is another standby, this one stands by for it from now on, keeping what it holds, so that a second loss is
    /// survived too. Looked at every 2 s, as the cluster removes the lost member; given up after the join timeout.
    /// </summary>
    void Following()
    {
        started = DateTime.UtcNow;
        Receive<Retry>(_ => Follow());
        Receive<StandbyAccepted>(Accepted);
        Receive<StandbyRefused>(Refused);
        Receive<Terminated>(_ => { });
        Receive<Kept>(LateKept);
        Receive<NotKept>(_ => { }); // the pull given up when the server was lost
        ReceiveAny(_ => Stash.Stash());
        Self.Tell(Retry.Instance); // the first look, once this behaviour is in place
    }

    void Follow()
    {
        if (Context.System is not ExtendedActorSystem { Provider: Akka.Cluster.IClusterActorRefProvider }) return; // no cluster: no one to follow
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var state = cluster.State;
        var next = state.Members
            .Where(m => m.Status == Akka.Cluster.MemberStatus.Up && m.HasRole(Hosting.ClusterHosting.ServerRole) && !lost.Contains(m.Address) &&
                        !state.Unreachable.Contains(m))
            .OrderBy(m => m, Akka.Cluster.Member.AgeOrdering).FirstOrDefault();
        if (next?.Address == cluster.SelfAddress)
        {
            report(new StandbyEvent("this standby is the oldest server left: the coordinator moves here"));
            Context.Stop(Self);
            return;
        }
        if (DateTime.UtcNow - started >= joinTimeout)
        {
            report(new StandbyRefusedBy(next is null
                ? $"no server member was left to stand by for within {joinTimeout.TotalSeconds:F0} s"
                : $"the server at {next.Address}, the oldest left, did not answer the standby's join within {joinTimeout.TotalSeconds:F0} s"));
            Context.Stop(Self);
            return;
        }
        if (next is not null)
        {
            feed = Context.ActorSelection(new RootActorPath(next.Address) / "user" / Hosting.ClusterHosting.StandbyFeedName);
            feed.Tell(join);
        }
        Timers.StartSingleTimer(Retry.Timer, Retry.Instance, Retry.Every);
    }

    void Replicating()
    {
        Stash.UnstashAll();
        Receive<StandbyAccepted>(_ => { });
        Receive<Retry>(_ => { });
        Receive<RoundCompleted>(r =>
        {
            // a server followed after a loss sends its records from round 1: the ones this standby has stay as they are
            if (!FromFeed(r) || r.Metrics.Round <= reported) return;
            reported = r.Metrics.Round;
            report(new StandbyRound(r.Metrics));
        });
        Receive<RevokedCertificates>(r =>
        {
            if (FromFeed(r)) Revoke(r.Serials);
        });
        Receive<Revoked>(r => report(new StandbyEvent(r.Text)));
        Receive<CheckpointReplica>(replica =>
        {
            if (!FromFeed(replica)) return;
            int round = replica.Round;
            if (round <= kept)
            {
                // never back: a lying or confused feed cannot make this standby resume from an older round than it holds
                log.Warning("standby: ignoring round {0}'s checkpoint from {1}: it holds round {2}'s", round, from, kept);
                return;
            }
            string path = checkpointPath, name = $"the replica of round {round} from {from}";
            pull = new CancellationTokenSource();
            pull.CancelAfter(PullTimeout);
            var token = pull.Token;
            CheckpointTransfer.Receive(replica, materializer, token).ContinueWith(pulled =>
            {
                var bytes = pulled.GetAwaiter().GetResult();
                var checkpoint = Checkpoint.Read(bytes, name, model, strategy);
                if (checkpoint.Round != round) throw new Core.DataException($"{name}: it holds round {checkpoint.Round}");
                token.ThrowIfCancellationRequested();
                AtomicFile.Write(path, s => s.Write(bytes));
                return round;
            }, CancellationToken.None, TaskContinuationOptions.LongRunning, TaskScheduler.Default) // a disk write: not on the pool
                .PipeTo(Self, success: kept => new Kept(kept), failure: e => new NotKept(round, e.GetBaseException().Message));
            Become(Keeping);
        });
        Receive<RunFinished>(f =>
        {
            if (!FromFeed(f)) return;
            report(new StandbyRunOver(f.Completed, f.Reason));
            Become(Over);
        });
        Receive<Terminated>(t =>
        {
            if (t.ActorRef.Equals(active)) Lost();
        });
        Receive<Kept>(LateKept);
        Receive<NotKept>(_ => { });
    }

    /// <summary>Whether <paramref name="message"/> came from the feed that accepted this standby; if not, it is logged and dropped.</summary>
    bool FromFeed(object message)
    {
        if (Sender.Equals(active)) return true;
        drops.Warn(Sender.Path.Address.ToString(), $"{message.GetType().Name} not from the feed",
            $"standby: ignoring a {message.GetType().Name} from {Sender.Path}: only the feed of the server at {from} is heard");
        return false;
    }

    /// <summary>The active server's revocations: in force here at once, then added to this standby's revoked.txt off the actor.</summary>
    void Revoke(IReadOnlyList<string> serials)
    {
        if (security is null)
        {
            log.Warning("standby: ignoring {0} revoked certificate(s) from {1}: this standby runs without TLS", serials.Count, from);
            return;
        }
        security.Replicate(serials, from)?.PipeTo(Self, success: line => new Revoked(line));
    }

    /// <summary>One replica at a time, in the order they came: the records and the end wait behind it.</summary>
    void Keeping()
    {
        Receive<Kept>(k =>
        {
            kept = k.Round;
            report(new StandbyKept(k.Round));
            Become(Replicating);
        });
        Receive<NotKept>(n =>
        {
            string reason = pull is { IsCancellationRequested: true } ? $"not received within {PullTimeout.TotalSeconds:F0} s ({n.Reason})" : n.Reason;
            log.Warning("standby: dropping round {0}'s checkpoint from {1}: {2}", n.Round, from, reason);
            report(new StandbyEvent($"dropped round {n.Round}'s checkpoint from {from}: {reason}"));
            Become(Replicating);
        });
        // The server lost mid-pull: a stream ref whose far end vanished may never fail, so the pull is given up now,
        // and this standby looks for whom to follow, instead of waiting behind it.
        Receive<Terminated>(t =>
        {
            if (!t.ActorRef.Equals(active)) return;
            pull?.Cancel();
            Lost();
        });
        ReceiveAny(_ => Stash.Stash());
    }

    /// <summary>The server this standby stood by for is gone from the cluster.</summary>
    void Lost()
    {
        report(new StandbyEvent($"lost the server at {from}; the cluster decides whether this standby takes over"));
        lost.Add(active.Path.Address);
        active = ActorRefs.Nobody;
        Become(Following);
    }

    /// <summary>A pull given up when its server was lost, that had written its file just before: this standby holds it.</summary>
    void LateKept(Kept k)
    {
        if (k.Round <= kept) return;
        kept = k.Round;
        report(new StandbyKept(k.Round));
    }

    void Over() => ReceiveAny(_ => { });

    sealed record Revoked(string Text) : INoSerializationVerificationNeeded;
    sealed record Kept(int Round) : INoSerializationVerificationNeeded;
    sealed record NotKept(int Round, string Reason) : INoSerializationVerificationNeeded;
}
