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
    readonly ActorSelection feed;
    readonly StandbyJoin join;
    readonly string checkpointPath;
    readonly string model;
    readonly string strategy;
    readonly Action<StandbyReport> report;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly TimeSpan joinTimeout;
    readonly Hosting.TransportSecurity? security;
    readonly DateTime started = DateTime.UtcNow;
    IMaterializer materializer = null!;
    string from = "";
    IActorRef active = ActorRefs.Nobody; // the feed that accepted this standby
    int kept; // the round of the checkpoint this standby holds (0: none)

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
        Joining();
    }

    public static Props Props(Address active, StandbyJoin join, string checkpointPath, string model, string strategy, Action<StandbyReport> report,
        TimeSpan? joinTimeout = null, Hosting.TransportSecurity? security = null) =>
        Akka.Actor.Props.Create(() => new StandbyReplica(active, join, checkpointPath, model, strategy, report, joinTimeout, security));

    protected override void PreStart()
    {
        materializer = Context.System.Materializer();
        SendJoin();
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
        Receive<StandbyAccepted>(accepted =>
        {
            Timers.Cancel(Retry.Timer);
            from = Sender.Path.Address.ToString();
            active = Sender;
            Context.Watch(Sender);
            report(new StandbyEvent($"standing by for the server at {from}" +
                                    (accepted.Round > 0 ? $" (its checkpoint is of round {accepted.Round})" : "")));
            Become(Replicating);
        });
        Receive<StandbyRefused>(refused =>
        {
            Timers.Cancel(Retry.Timer);
            report(new StandbyRefusedBy(refused.Reason));
            Context.Stop(Self);
        });
        ReceiveAny(_ => Stash.Stash()); // a replica that overtook the answer
    }

    void Replicating()
    {
        Stash.UnstashAll();
        Receive<StandbyAccepted>(_ => { });
        Receive<Retry>(_ => { });
        Receive<RoundCompleted>(r =>
        {
            if (FromFeed(r)) report(new StandbyRound(r.Metrics));
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
            CheckpointTransfer.Receive(replica, materializer).ContinueWith(pulled =>
            {
                var bytes = pulled.GetAwaiter().GetResult();
                var checkpoint = Checkpoint.Read(bytes, name, model, strategy);
                if (checkpoint.Round != round) throw new Core.DataException($"{name}: it holds round {checkpoint.Round}");
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
        Receive<Terminated>(_ => report(new StandbyEvent($"lost the server at {from}; the cluster decides whether this standby takes over")));
    }

    /// <summary>Whether <paramref name="message"/> came from the feed that accepted this standby; if not, it is logged and dropped.</summary>
    bool FromFeed(object message)
    {
        if (Sender.Equals(active)) return true;
        log.Warning("standby: ignoring a {0} from {1}: only the feed of the server at {2} is heard", message.GetType().Name, Sender.Path, from);
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
        var fresh = security.AddRevoked(serials);
        if (fresh.Count == 0) return;
        string path = security.RevokedPath, source = from, note = $"revoked by the server at {from}, replicated {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC";
        string done = $"revoked {fresh.Count} certificate(s) the server at {source} revoked ({string.Join(", ", fresh.Take(3))}{(fresh.Count > 3 ? ", …" : "")})";
        Task.Factory.StartNew(() => Hosting.FederationCertificates.AddRevoked(path, fresh.Select(f => (f, note))),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default) // a disk write: not on the pool
            .PipeTo(Self, success: _ => new Revoked($"{done}; added to {path}"),
                failure: e => new Revoked($"{done}, until this standby stops: cannot add them to {path} ({e.GetBaseException().Message})"));
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
            log.Warning("standby: dropping round {0}'s checkpoint from {1}: {2}", n.Round, from, n.Reason);
            report(new StandbyEvent($"dropped round {n.Round}'s checkpoint from {from}: {n.Reason}"));
            Become(Replicating);
        });
        ReceiveAny(_ => Stash.Stash());
    }

    void Over() => ReceiveAny(_ => { });

    sealed record Revoked(string Text) : INoSerializationVerificationNeeded;
    sealed record Kept(int Round) : INoSerializationVerificationNeeded;
    sealed record NotKept(int Round, string Reason) : INoSerializationVerificationNeeded;
}
