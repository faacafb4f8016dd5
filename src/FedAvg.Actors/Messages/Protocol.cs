using Akka.Actor;
using FedAvg.Core.Strategies;

namespace FedAvg.Actors.Messages;

// The federation protocol, in one file. Every message implements IFedAvgMessage, which hocon/*.conf binds to
// Serialization.FedAvgSerializer: nothing here ever goes through Akka's JSON fallback, and nothing depends on
// sharing memory with the sender.
//
//   node (ClientHost)                          coordinator (FederationServer, a cluster singleton)
//     │── JoinFederation(node, range, session, proof) ──────▶│   repeated until answered
//     │◀──────── Welcome(run spec, proof) | JoinRefused ─────│   from here on, every message in InSession
//     │◀───────────── JoinHeldBack(reason) ──────────────────│   not an answer: the node keeps asking
//     │── RegisterClients(node, layout hash, clients) ──────▶│   again after every (re)join: idempotent
//     │◀───────────── Registered | RegistrationRefused ──────│
//     │◀── TrainRound(r, attempt, clients, config, weights) ─│   once per node per attempt, weights once per node
//   client k                                                  │
//     │── UpdateSubmitted(r, k, n, …, weights) ─────────────▶│   only from the actor registered as k
//     │── TrainingFailed(r, k, reason) ─────────────────────▶│
//     │── FaultsFired(k, [(r, behaviour)…]) ────────────────▶│   fault injection only, before the answer it concerns
//     │◀──────────────────── RunFinished ────────────────────│   the run is over: leave the cluster
//
// Who sent a message is proven by the session, never by Akka's sender: Akka.Remote takes a message's sender from the
// message itself (AkkaPduCodec.DecodeMessage resolves the envelope's sender path, whatever connection it came on),
// so any member of the cluster can post as any actor. The node draws 128 random bits when it starts and sends them
// in JoinFederation through the singleton proxy; from then on every message between the node (its host and its
// clients) and the coordinator travels as InSession(session, message), and each end drops one in another session,
// or one of these messages outside a session, with a warning. (In a system of one process, which nothing reaches over
// the wire, messages go as they are: InSession.Needed.) With TLS the session never crosses the wire in clear,
// so only the node and the coordinator know it; a join carries the node's proof (NodeProof) that it holds the key of
// a certificate named as the node, and a welcome the coordinator's proof of a certificate of role server, so no
// member joins under another node's id, or coordinates nodes without being a server (Hosting/NodeIdentity). Only
// RegisterAgain may come outside a session: a new coordinator asks nodes it does not know yet, and all it makes a node
// do is join again.
//
// Weights never travel inside a message between nodes: WeightsPayload is an in-process hand-over (the receiver
// takes ownership of the array), a ticket for the server's weight channel (Transfer/WeightChannel: the bytes go
// over a socket of their own, the way a cluster node runs), or a stream of 64 KiB chunks (Transfer/WeightStream,
// for systems without a channel), with a header that names the format version, the layout, the round, the
// client, the sample count and a checksum.

/// <summary>Marks every message of the federation protocol; bound to <see cref="Serialization.FedAvgSerializer"/>.</summary>
public interface IFedAvgMessage;

// ---- membership ------------------------------------------------------------------------------------------

/// <summary>What a node offers: a range of the run's client ids (research mode) or one client of its own data.</summary>
public abstract record ClientRequest;

/// <summary>Research mode: the node hosts clients <paramref name="First"/>..<paramref name="Last"/> (inclusive) of the run's K.</summary>
public sealed record ClientRange(int First, int Last) : ClientRequest
{
    public override string ToString() => First == Last ? $"{First}" : $"{First}-{Last}";
}

/// <summary>Own-data mode: the node's own IDX files form one client of <paramref name="SampleCount"/> samples.</summary>
public sealed record OwnData(int SampleCount) : ClientRequest
{
    public override string ToString() => $"own data ({SampleCount} samples)";
}

/// <summary>
/// A node asks to take part. Sent through the singleton proxy, again until answered: idempotent.
/// <paramref name="Session"/>: 128 random bits the node drew when it started (the same for every join of that
/// process), which every later message between it and the coordinator carries (<see cref="InSession"/>).
/// <paramref name="Proof"/>: with TLS, that the node holds the key of a certificate named <paramref name="NodeId"/>
/// (Hosting/NodeIdentity); a TLS server admits no join without one. Null in plaintext and in one process.
/// </summary>
public sealed record JoinFederation(string NodeId, string Federation, ClientRequest Request, Guid Session, NodeProof? Proof = null) : IFedAvgMessage;

/// <summary>
/// A member's certificate (DER, as the federation's CA issued it) and its signature, with that certificate's private
/// key, over what it is for (a node's join, the coordinator's welcome of it): federation, node id, the node's session
/// and the signer's address (Hosting/NodeIdentity). Akka.Remote does not tell an actor which certificate the
/// connection a message came on presented, so a member proves it in the message: without this, any member of the
/// federation could join under another node's id, or act as the coordinator once it held the singleton.
/// </summary>
public sealed record NodeProof(byte[] Certificate, byte[] Signature)
{
    /// <summary>A certificate of `fedavg certs issue` is about 600 bytes; more is refused by the serializer.</summary>
    public const int MaxCertificateBytes = 8 * 1024;
    /// <summary>An ECDSA P-256 signature is 64 bytes; more is refused by the serializer.</summary>
    public const int MaxSignatureBytes = 512;
}

/// <summary>
/// <paramref name="Message"/> between a node and the coordinator, after the node's <see cref="JoinFederation"/>:
/// <paramref name="Session"/> is the node's, which only the two of them know, and is the proof of who sent it (Akka's
/// sender is not). Never nested, and never around a join: <see cref="InSessionTypes"/>.
/// </summary>
public sealed record InSession(Guid Session, IFedAvgMessage Message) : IFedAvgMessage
{
    /// <summary>The messages that travel in a session; any of them outside one, from another node, is dropped.</summary>
    public static readonly IReadOnlySet<Type> InSessionTypes = new HashSet<Type>
    {
        typeof(Welcome), typeof(JoinRefused), typeof(JoinHeldBack), typeof(RegisterClients), typeof(Registered), typeof(RegistrationRefused),
        typeof(RegisterAgain), typeof(TrainRound), typeof(UpdateSubmitted), typeof(TrainingFailed), typeof(FaultsFired),
        typeof(RunFinished),
        // a standby's (StandbyJoin carries its session)
        typeof(StandbyAccepted), typeof(StandbyRefused), typeof(RoundCompleted), typeof(CheckpointReplica), typeof(RevokedCertificates),
    };

    /// <summary>
    /// True when <paramref name="system"/> takes messages from other processes (Akka.Remote, Akka.Cluster): then its
    /// actors send and expect sessions. In a system of one process (`fedavg simulate`, a test's) no other process can
    /// post anything, Akka's sender is who sent a message, and messages go as they are.
    /// </summary>
    public static bool Needed(ActorSystem system) => ((ExtendedActorSystem)system).Provider is Akka.Remote.RemoteActorRefProvider;

    /// <summary>
    /// The check of an end that holds one <paramref name="session"/> (a node's host, a standby): true when
    /// <paramref name="message"/> is to be handled, unwrapped when it came in that session; false when it is to be
    /// dropped, with <paramref name="outside"/> telling whether it came outside any session (over the wire, a message
    /// of <see cref="InSessionTypes"/> but <see cref="RegisterAgain"/>) or in another one. Anything else passes as it is.
    /// </summary>
    public static bool Admit(ref object message, Guid session, bool overTheWire, out bool outside)
    {
        outside = false;
        if (message is InSession inSession)
        {
            message = inSession.Message;
            return inSession.Session == session;
        }
        outside = overTheWire && message is IFedAvgMessage and not RegisterAgain && InSessionTypes.Contains(message.GetType());
        return !outside;
    }

    /// <summary>A new session: 128 bits from the OS's cryptographic generator, never from the run's seed.</summary>
    public static Guid NewSession() => new(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
}

/// <summary>
/// The run a node joins: in research mode the node computes its clients' shards from dataset, partition, K and
/// seed, exactly as <c>fedavg simulate</c> would, so it needs no copy of the run's settings.
/// </summary>
public sealed record RunSpec(
    string Federation, string Dataset, string Model, int Clients, string Partition, int Seed, bool Standardize, ulong LayoutHash);

/// <summary>
/// The coordinator admits a node. <paramref name="Proof"/>: with TLS, the coordinator's signature, with a certificate of
/// role server, over the node's join and its own address (Hosting/NodeIdentity); a TLS node takes part only after a
/// welcome whose proof verifies, and trains only for the coordinator that sent it. Null in plaintext and in one process.
/// </summary>
public sealed record Welcome(RunSpec Spec, NodeProof? Proof = null) : IFedAvgMessage;

/// <summary>The coordinator will not have this node (wrong federation, a range outside 0..K−1 or taken by another node).</summary>
public sealed record JoinRefused(string Reason) : IFedAvgMessage;

/// <summary>Not an answer: the coordinator will not admit this node yet (its node id belongs to another member that is up
/// and reachable), so the node keeps asking, and says why once. Sent in the session of the join it holds back.</summary>
public sealed record JoinHeldBack(string Reason) : IFedAvgMessage;

/// <summary>One client a node hosts: its id, its sample count, and the only actor allowed to answer for it.</summary>
public sealed record ClientEntry(string ClientId, int SampleCount, IActorRef Client);

/// <summary>A node's clients, ready to train. Sent after every (re)join and on <see cref="RegisterAgain"/>.</summary>
public sealed record RegisterClients(string NodeId, ulong LayoutHash, IReadOnlyList<ClientEntry> Clients) : IFedAvgMessage;

public sealed record Registered(string NodeId, int Clients) : IFedAvgMessage;

/// <summary>The node's model layout (or its clients) cannot take part; the node exits with the reason.</summary>
public sealed record RegistrationRefused(string Reason) : IFedAvgMessage;

/// <summary>The coordinator lost track of this node (it was unreachable, or the coordinator restarted): register again.</summary>
public sealed record RegisterAgain : IFedAvgMessage
{
    public static readonly RegisterAgain Instance = new();
}

// ---- rounds ----------------------------------------------------------------------------------------------

/// <summary>The weights a message carries: handed over in-process, or streamed in chunks between nodes.</summary>
public abstract record WeightsPayload(WeightHeader Header);

/// <summary>
/// What identifies a weight vector on the wire. <paramref name="Checksum"/> is XxHash64 of the little-endian
/// float32 bytes; <paramref name="LayoutHash"/> is the model layout's (names and shapes) hash.
/// </summary>
public sealed record WeightHeader(byte FormatVersion, ulong LayoutHash, int Round, string ClientId, int SampleCount, int Length, ulong Checksum);

/// <summary>Same process: the receiver owns <paramref name="Weights"/> from now on (global weights: read-only, shared).</summary>
public sealed record LocalWeights(WeightHeader Header, float[] Weights) : WeightsPayload(Header);

/// <summary>Another node: the receiver pulls the vector as chunks of at most 64 KiB through an Akka.Streams stream ref.</summary>
public sealed record StreamedWeights(WeightHeader Header, Akka.Streams.ISourceRef<byte[]> Chunks) : WeightsPayload(Header);

/// <summary>
/// Another node, through the server's weight channel (Transfer/WeightChannel): the vector is fetched from, or was
/// uploaded to, port <paramref name="Port"/> of the server's host (the host of its Akka address, never one the
/// message names) under <paramref name="Ticket"/>, 128 random bits that only the sender and receiver know.
/// <paramref name="Pushed"/>: the server is already writing the vector on the node's subscription to the channel
/// (the node waits for it there, and fetches it under the same ticket if it does not come).
/// </summary>
public sealed record ChanneledWeights(WeightHeader Header, int Port, Guid Ticket, bool Pushed = false) : WeightsPayload(Header);

/// <summary>One client's work in a round: who trains, and the seed of its local shuffling.</summary>
public sealed record ClientTask(string ClientId, int ShuffleSeed);

/// <summary>
/// The coordinator asks a node's sampled clients to train round <paramref name="Round"/> (attempt
/// <paramref name="Attempt"/>) from the global weights. One per node: the node hands the same read-only weights
/// to every client it hosts. <paramref name="Config"/> is the strategy's open per-round config (FedProx adds its μ);
/// each client turns it into the typed training settings it trains with.
/// </summary>
public sealed record TrainRound(int Round, int Attempt, IReadOnlyList<ClientTask> Clients, RoundConfig Config, WeightsPayload Weights) : IFedAvgMessage;

/// <summary>A client finished training <paramref name="Round"/> and submits its weights.</summary>
public sealed record UpdateSubmitted(
    int Round, string ClientId, int SampleCount, double TrainLoss, double TrainAccuracy, double TrainSeconds, WeightsPayload Weights) : IFedAvgMessage;

/// <summary>A client could not train <paramref name="Round"/> (it threw and is being restarted, or its node could not get the weights).</summary>
public sealed record TrainingFailed(int Round, string ClientId, string Reason) : IFedAvgMessage;

/// <summary>
/// Injected faults (FedAvg.Actors.Faults, `fedavg.faults` or the kit) that acted on client <paramref name="ClientId"/>,
/// each with its round: sent by the client actor itself, to the server it answers, before the answer they concern
/// (Akka keeps the order of one sender's messages to one receiver), so the server can list in each round's record the
/// faults of every node, not only of its own process. The server counts a report only from the actor registered (or
/// sampled) under that id, for the round it is closing, at most <see cref="MaxPerClientAndRound"/> per client and
/// round. Production clients inject nothing and never send one.
/// </summary>
public sealed record FaultsFired(string ClientId, IReadOnlyList<FaultFired> Faults) : IFedAvgMessage
{
    /// <summary>More faults than this from one client in one round are not recorded (and logged): a record stays small.</summary>
    public const int MaxPerClientAndRound = 64;
}

/// <summary>The run is over (completed or failed): nodes leave the cluster and exit.</summary>
public sealed record RunFinished(bool Completed, string Reason) : IFedAvgMessage;

// ---- standby servers --------------------------------------------------------------------------------------
//
//   standby server (StandbyReplica)                        active server's host (StandbyFeed, /user/standby-feed)
//     │── StandbyJoin(federation, run settings, session) ────▶│   repeated until answered; all after it InSession
//     │◀────────────── StandbyAccepted | StandbyRefused ───────│   refused: another federation, or other settings
//     │◀── RoundCompleted(metrics) … ──────────────────────────│   every round up to the checkpoint, not sent before
//     │◀── CheckpointReplica(round, length, checksum, chunks) ─│   after each checkpoint is saved: 64 KiB chunks
//     │◀──────────────────── RunFinished ──────────────────────│   after the last replica: the standby leaves first
//
// A standby is a `server` member that joined after the active one: the coordinator singleton runs on the oldest
// server member, so it moves to the standby when the active server's node is downed, and starts there from the
// last replica, as `fedavg server --resume` would.

/// <summary>A standby server asks the active one to replicate its run. <paramref name="Settings"/>: its run settings as
/// HOCON (SimulationOptions.ToHocon), which must match the active server's, except the trainers it runs with.
/// <paramref name="Session"/>: drawn by the standby when it starts; the feed's every message to it travels in it
/// (<see cref="InSession"/>), so no other member can send it a checkpoint to resume from, or end it.
/// <paramref name="Proof"/>: with TLS, that the standby holds the key of a certificate of role server (Hosting/
/// NodeIdentity); a TLS server replicates its run to no member without one. Null in plaintext.</summary>
public sealed record StandbyJoin(string Federation, string Settings, Guid Session, NodeProof? Proof = null) : IFedAvgMessage;

/// <summary>The active server replicates to this standby from now on; <paramref name="Round"/>: its last checkpoint's (0: none yet).</summary>
public sealed record StandbyAccepted(int Round) : IFedAvgMessage;

/// <summary>The active server will not have this standby; it exits with the reason.</summary>
public sealed record StandbyRefused(string Reason) : IFedAvgMessage;

/// <summary>
/// The checkpoint file after round <paramref name="Round"/> (Core.Runtime.Checkpoint, with its own sha256 trailer):
/// <paramref name="Length"/> bytes with XxHash3 <paramref name="Checksum"/>, pulled as chunks of at most 64 KiB
/// through an Akka.Streams stream ref, so that no message is near the remote frame.
/// </summary>
public sealed record CheckpointReplica(int Round, long Length, ulong Checksum, Akka.Streams.ISourceRef<byte[]> Chunks) : IFedAvgMessage;

/// <summary>
/// Certificate serials the active server's revoked.txt lists (with TLS), sent to each standby when it joins and when
/// the list grows, so that a standby that takes over refuses the nodes the server refused; and to each node after its
/// welcome and as a round starts, so that nodes refuse them too (any member connects to any other). A standby or node
/// adds them to its own list and never removes one on the network's word: lifting a revocation is done by hand. At
/// most <see cref="MaxPerMessage"/> serials of at most 64 hex digits each (under 70 KB, inside the remote frame); a
/// longer list goes in several messages.
/// </summary>
public sealed record RevokedCertificates(IReadOnlyList<string> Serials) : IFedAvgMessage
{
    public const int MaxPerMessage = 1000;
}

// ---- to the host that started the server ----------------------------------------------------------------

/// <summary>
/// What one round did and measured. <paramref name="Rejected"/>: every answer the server did not count while the round
/// was open or closing, and why (refused updates, failed or silent sampled clients, late updates of earlier rounds);
/// <paramref name="Faults"/>: the injected faults that fired in this round, on any node, as the clients reported them
/// (<see cref="FaultsFired"/>), in client-id order. Null in records of earlier versions: none.
/// <paramref name="MedianUpdateNorm"/>: the median ‖w_local − w_global‖ of the round's well-formed updates (those that
/// passed every other check), the norm rule's reference (`server.max-update-norm`); null in records of earlier versions.
/// </summary>
public sealed record RoundMetrics(
    int Round, int Sampled, int Succeeded, int Failed, int Attempts,
    double TestLoss, double TestAccuracy, double MeanTrainLoss,
    double TrainingSeconds, double TrainerBusySeconds, double AggregationSeconds, double EvaluationSeconds, double RoundSeconds,
    IReadOnlyList<Rejection>? Rejected = null, IReadOnlyList<FaultFired>? Faults = null, double? MedianUpdateNorm = null)
{
    [System.Text.Json.Serialization.JsonIgnore] public IReadOnlyList<Rejection> RejectedOrEmpty => Rejected ?? [];
    [System.Text.Json.Serialization.JsonIgnore] public IReadOnlyList<FaultFired> FaultsOrEmpty => Faults ?? [];
}

/// <summary>An answer of <paramref name="ClientId"/> (labelled round <paramref name="Round"/>) that did not count, and why.</summary>
public sealed record Rejection(int Round, string ClientId, string Reason)
{
    public override string ToString() => $"{ClientId}: {Reason}";
}

/// <summary>An injected fault (Faults/FaultBehaviour) that acted on <paramref name="ClientId"/> in round <paramref name="Round"/>.</summary>
public sealed record FaultFired(int Round, string ClientId, string Behaviour)
{
    public override string ToString() => $"{ClientId}: {Behaviour}";
}

/// <summary>The server closed a round: the global model moved on.</summary>
public sealed record RoundCompleted(RoundMetrics Metrics) : IFedAvgMessage;

/// <summary>The run ended normally, after the last round or on reaching the target accuracy.</summary>
public sealed record RunCompleted(int Rounds, double FinalAccuracy, int? TargetReachedAtRound, float[] FinalWeights) : IFedAvgMessage;

/// <summary>The run stopped before its end, for the reason given.</summary>
public sealed record RunFailed(int Round, string Reason) : IFedAvgMessage;

/// <summary>The ids of a run's K clients: the same on every node and in a simulation.</summary>
public static class ClientIds
{
    /// <summary>"client-007" for k = 7 of K ≤ 1000; wide enough that ordinal order is numeric order.</summary>
    public static string Of(int index, int clients) =>
        $"client-{index.ToString().PadLeft(Math.Max(3, (clients - 1).ToString().Length), '0')}";
}
