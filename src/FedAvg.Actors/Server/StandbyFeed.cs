using Akka.Actor;
using Akka.Event;
using Akka.Streams;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Runtime;

namespace FedAvg.Actors.Server;

/// <summary>
/// On every `fedavg server` (/user/standby-feed): replicates the run to the standby servers that ask for it
/// (<see cref="StandbyJoin"/>), so that one of them can take over the coordinator from the last completed round when
/// this server's node is lost. Each round it sends every standby the round's record and then the checkpoint file,
/// read after the coordinator saved it; at the end it tells them the run is over, after the last replica. With TLS it
/// also sends them the serials of the certificates this server has revoked, when one joins and each round the list
/// has grown (<see cref="RevokedCertificates"/>), so a standby that takes over refuses the same nodes.
/// </summary>
/// <remarks>
/// The host tells it each <see cref="RoundCompleted"/> (the coordinator reports a round once its checkpoint is on
/// disk) and the <see cref="RunFinished"/>. Reading, checking and chunking the file, and materializing the stream refs,
/// run off the actor. The feed keeps the last checkpoint as chunks, read once per round and streamed to every standby
/// from the same arrays: one more copy of the checkpoint in memory (0.8 MB for seed001-2nn, 6.65 MB for mcmahan-cnn,
/// three times that with FedAdam's moments), and none while no standby has joined.
/// </remarks>
public sealed class StandbyFeed : ReceiveActor, IWithStash
{
    readonly string federation;
    readonly string? checkpointPath;
    readonly Func<string, string?> settingsRejection;
    readonly Func<IReadOnlySet<string>>? revoked;
    readonly Hosting.NodeIdentity? identity;
    readonly ILoggingAdapter log = Context.GetLogger();
    // joins it refuses or ignores, one line per sender and kind every 10 s: any member can send StandbyJoin at wire speed
    readonly PeerWarnings drops;
    readonly List<RoundMetrics> rounds = new();
    // each standby, and the last round whose record and checkpoint it was sent
    readonly Dictionary<IActorRef, int> standbys = new();
    readonly HashSet<IActorRef> offering = new();
    // the revoked serials each standby was sent
    readonly Dictionary<IActorRef, HashSet<string>> revokedSent = new();
    // each standby's session, from its first join: everything it is sent travels in it (Messages/Protocol.cs)
    readonly Dictionary<IActorRef, Guid> sessions = new();
    // With TLS, the standby proofs checked per sender address (a chain build each: Hosting/ProofBudget)
    readonly Hosting.ProofBudget proofBudget = new();
    CheckpointTransfer.Chunked? latest; // the last checkpoint read, cut into the chunks every standby is streamed
    int working; // reads and offers under way: RunFinished waits for them
    bool finished;
    IMaterializer materializer = null!;

    public IStash Stash { get; set; } = null!;

    /// <param name="settingsRejection">Why a standby's run settings (HOCON) cannot stand by for this run, or null.</param>
    /// <param name="revoked">The serials this server refuses (TransportSecurity.Revoked, which may read revoked.txt
    /// again: called off the actor), or null without TLS.</param>
    /// <param name="identity">With TLS: a standby is accepted only with a proof of a certificate of role server (Hosting/NodeIdentity).</param>
    public StandbyFeed(string federation, string? checkpointPath, Func<string, string?> settingsRejection, Func<IReadOnlySet<string>>? revoked = null,
        Hosting.NodeIdentity? identity = null)
    {
        this.identity = identity;
        this.federation = federation;
        this.checkpointPath = checkpointPath;
        this.settingsRejection = settingsRejection;
        this.revoked = revoked;
        drops = new PeerWarnings(line => log.Warning("{0}", line), "standby feed");
        Receive<StandbyJoin>(Join);
        Receive<IsAccepted>(ask => Sender.Tell(new Accepted(ask.Member, standbys.Keys.Any(s => s.Path.Address.Equals(ask.Member.Address)))));
        Receive<RoundCompleted>(completed =>
        {
            rounds.RemoveAll(r => r.Round >= completed.Metrics.Round);
            rounds.Add(completed.Metrics);
            if (standbys.Count == 0) return; // read when one joins
            ReadRevoked();
            // A read for an earlier record may have found this round's file already: it waited for this record.
            if (latest is { } l && l.Round >= completed.Metrics.Round) ReplicateAll();
            else ReadCheckpoint();
        });
        Receive<CheckpointRead>(read =>
        {
            working--;
            if (latest is not { } l || read.Checkpoint.Round > l.Round) latest = read.Checkpoint;
            ReplicateAll();
            Release();
        });
        Receive<RevokedRead>(read =>
        {
            foreach (var (standby, sent) in revokedSent)
            {
                var fresh = read.Serials.Where(s => !sent.Contains(s)).ToList();
                foreach (var batch in fresh.Chunk(RevokedCertificates.MaxPerMessage)) Send(standby, new RevokedCertificates(batch));
                sent.UnionWith(fresh);
            }
        });
        Receive<RevokedUnread>(f => log.Warning("standby feed: cannot read the revoked list to replicate it: {0}", f.Reason));
        Receive<ReadFailed>(f =>
        {
            working--;
            log.Warning("standby feed: cannot read the checkpoint to replicate it: {0}", f.Reason);
            Release();
        });
        Receive<Offered>(o =>
        {
            working--;
            offering.Remove(o.Standby);
            if (standbys.ContainsKey(o.Standby))
            {
                // the records, then the checkpoint they lead to, in this order: a standby that takes over has both or neither
                foreach (var r in o.Records) Send(o.Standby, new RoundCompleted(r));
                Send(o.Standby, o.Replica);
                Replicate(o.Standby); // a newer checkpoint may have been read meanwhile
            }
            Release();
        });
        Receive<OfferFailed>(f =>
        {
            working--;
            offering.Remove(f.Standby);
            log.Warning("standby feed: cannot offer round {0}'s checkpoint to {1}: {2}", f.Round, f.Standby.Path.Address, f.Reason);
            if (standbys.ContainsKey(f.Standby)) standbys[f.Standby] = f.From; // its records go with the next checkpoint
            Release();
        });
        Receive<RunFinished>(finish =>
        {
            if (working > 0)
            {
                Stash.Stash(); // after the last replica
                return;
            }
            finished = true;
            foreach (var standby in standbys.Keys) Send(standby, finish);
        });
        Receive<Terminated>(t =>
        {
            offering.Remove(t.ActorRef);
            revokedSent.Remove(t.ActorRef);
            sessions.Remove(t.ActorRef);
            proofBudget.Forget(t.ActorRef.Path.Address);
            if (standbys.Remove(t.ActorRef)) log.Info("standby feed: the standby at {0} is gone", t.ActorRef.Path.Address);
        });
    }

    /// <summary>Whether <see cref="Member"/> is a standby this feed accepted: asked by <see cref="StrayServers"/>, in this process only
    /// (no serializer binds it, so it never comes off the wire).</summary>
    public sealed record IsAccepted(Akka.Cluster.UniqueAddress Member);

    /// <summary>The answer to <see cref="IsAccepted"/>.</summary>
    public sealed record Accepted(Akka.Cluster.UniqueAddress Member, bool Yes);

    public static Props Props(string federation, string? checkpointPath, Func<string, string?> settingsRejection,
        Func<IReadOnlySet<string>>? revoked = null, Hosting.NodeIdentity? identity = null) =>
        Akka.Actor.Props.Create(() => new StandbyFeed(federation, checkpointPath, settingsRejection, revoked, identity));

    protected override void PreStart() => materializer = Context.System.Materializer();

    protected override void PostStop() => drops.Dispose();

    void Send(IActorRef standby, IFedAvgMessage message) => Send(standby, sessions[standby], message);

    /// <summary>To a standby, in its session when messages go over the wire (in one process, as it is).</summary>
    void Send(IActorRef standby, Guid session, IFedAvgMessage message)
    {
        if (InSession.Needed(Context.System)) standby.Tell(new InSession(session, message));
        else standby.Tell(message);
    }

    void Join(StandbyJoin join)
    {
        var standby = Sender;
        if (standbys.ContainsKey(standby))
        {
            // a retry that crossed the answer, answered in the session of the first join: a join in another one, with
            // the standby's own actor as sender, is not the standby's (its session is its own for its life)
            if (join.Session == sessions[standby]) Send(standby, new StandbyAccepted(standbys[standby]));
            else drops.Warn(standby.Path.Address.ToString(), "join in another session",
                $"standby feed: ignoring a join as the standby at {standby.Path} in another session than its own");
            return;
        }
        if (identity is not null && join.Federation == federation && !proofBudget.TryCheck(standby.Path.Address))
        {
            drops.Warn(standby.Path.Address.ToString(), "join flood", Hosting.ProofBudget.Over("standby feed", standby.Path.Address, "a standby asks every 2 s"));
            return;
        }
        string? reason = join.Federation != federation ? $"it stands by for federation '{join.Federation}', this server runs '{federation}'"
            : identity?.StandbyJoinRejection(join, standby.Path.Address) is { } unproven ? unproven
            : checkpointPath is null ? "this server keeps no checkpoint to replicate"
            : finished ? "the run is over"
            : settingsRejection(join.Settings);
        if (reason is not null)
        {
            drops.Warn(standby.Path.Address.ToString(), $"refused join: {reason}", $"standby feed: refusing the standby at {standby.Path.Address}: {reason}");
            Send(standby, join.Session, new StandbyRefused(reason));
            return;
        }
        log.Info("standby feed: a standby server joined from {0}", standby.Path.Address);
        standbys[standby] = 0;
        sessions[standby] = join.Session;
        Context.Watch(standby);
        Send(standby, new StandbyAccepted(rounds.LastOrDefault()?.Round ?? 0));
        if (revoked is not null) revokedSent[standby] = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        ReadRevoked();
        ReadCheckpoint();
    }

    /// <summary>Looks at the revoked list off the actor (it may read revoked.txt again); each standby is then sent the
    /// serials it lacks. A list that cannot be read is the server's own concern: TransportSecurity keeps the one in force.</summary>
    void ReadRevoked()
    {
        if (revoked is not { } read) return;
        Task.Run(() => new RevokedRead(read().ToList())).PipeTo(Self, failure: e => new RevokedUnread(e.GetBaseException().Message));
    }

    /// <summary>Reads the checkpoint file off the actor (on the pool: a read of a few MB, the page cache's most often);
    /// once read, every standby is sent what it lacks up to it.</summary>
    void ReadCheckpoint()
    {
        if (checkpointPath is null || !File.Exists(checkpointPath)) return; // no round completed yet
        working++;
        string path = checkpointPath;
        Task.Run(() =>
        {
            var bytes = File.ReadAllBytes(path);
            // its round, whatever round it was read for; checked as a standby will check it
            return new CheckpointRead(CheckpointTransfer.Chunk(Checkpoint.Read(bytes, path).Round, bytes));
        }).PipeTo(Self, failure: e => new ReadFailed(e.GetBaseException().Message));
    }

    void ReplicateAll()
    {
        foreach (var standby in standbys.Keys.ToList()) Replicate(standby);
    }

    /// <summary>
    /// Sends <paramref name="standby"/> the records it has not had up to the latest checkpoint's round, then that
    /// checkpoint. A checkpoint newer than the newest record (the file was read after the coordinator had saved the
    /// next round, before this feed heard of it) waits for its record: a standby holds a round's checkpoint only with
    /// every record up to it.
    /// </summary>
    void Replicate(IActorRef standby)
    {
        if (latest is not { } l || standbys[standby] >= l.Round || l.Round > (rounds.LastOrDefault()?.Round ?? 0)) return;
        // One offer at a time per standby: two in flight could complete in either order, and the standby would get a
        // round's records and checkpoint after a later round's.
        if (!offering.Add(standby)) return;
        int from = standbys[standby], round = l.Round;
        var records = rounds.Where(r => r.Round > from && r.Round <= round).ToList();
        standbys[standby] = round;
        working++;
        CheckpointTransfer.Offer(l, materializer)
            .PipeTo(Self, success: replica => new Offered(standby, records, replica), failure: e => new OfferFailed(standby, round, from, e.GetBaseException().Message));
    }

    void Release()
    {
        if (working == 0) Stash.UnstashAll();
    }

    sealed record CheckpointRead(CheckpointTransfer.Chunked Checkpoint) : INoSerializationVerificationNeeded;
    sealed record RevokedRead(IReadOnlyList<string> Serials) : INoSerializationVerificationNeeded;
    sealed record RevokedUnread(string Reason) : INoSerializationVerificationNeeded;
    sealed record ReadFailed(string Reason) : INoSerializationVerificationNeeded;
    sealed record Offered(IActorRef Standby, IReadOnlyList<RoundMetrics> Records, CheckpointReplica Replica) : INoSerializationVerificationNeeded;
    sealed record OfferFailed(IActorRef Standby, int Round, int From, string Reason) : INoSerializationVerificationNeeded;
}
