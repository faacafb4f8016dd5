using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Serialization;
using System.Text;
using Akka.Actor;
using Akka.Serialization;
using Akka.Streams;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Strategies;

namespace FedAvg.Actors.Serialization;

/// <summary>
/// The binary encoding of the protocol (Messages/Protocol.cs). Every message starts with the format version; fields
/// are little-endian, strings UTF-8 with a length, and counts are checked against the bytes that remain, so a
/// hostile length cannot make a node allocate. Bad bytes raise a <see cref="SerializationException"/> that names
/// the message and the fault; Akka.Remote logs it and drops that message, the association and the node stay up.
/// </summary>
/// <remarks>
/// Between nodes no message here carries weights: <see cref="StreamedWeights"/> carries a stream ref, whose
/// 64 KiB chunks are byte arrays with Akka's own byte-array serializer. <see cref="LocalWeights"/> (an in-process
/// hand-over) is encoded inline only so that <c>serialize-messages = on</c> can check every message in tests.
/// A message is written into one array sized in advance, so encoding costs one copy of its contents.
/// </remarks>
public sealed class FedAvgSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 4242;
    // 2: JoinFederation and StandbyJoin carry a session, and InSession wraps the messages after them
    // 3: JoinFederation, Welcome and StandbyJoin carry their sender's proof of its certificate (NodeProof) when there is one
    public const byte FormatVersion = 3;
    public override int Identifier => Id;

    /// <summary>
    /// Strings on the wire are ids, names and reasons: an id or a name longer than this is refused, a reason (free text,
    /// often an exception's message) is cut to fit (<see cref="WireWriter.Reason"/>), and a reader refuses anything longer.
    /// </summary>
    const int MaxStringBytes = 16 * 1024;

    // One manifest per message type, fixed forever: renaming a C# type does not change the wire.
    static readonly Dictionary<Type, string> Manifests = new()
    {
        [typeof(JoinFederation)] = "JF",
        [typeof(Welcome)] = "WE",
        [typeof(JoinRefused)] = "JR",
        [typeof(JoinHeldBack)] = "JH",
        [typeof(RegisterClients)] = "RC",
        [typeof(Registered)] = "RG",
        [typeof(RegistrationRefused)] = "RR",
        [typeof(RegisterAgain)] = "RA",
        [typeof(TrainRound)] = "TR",
        [typeof(UpdateSubmitted)] = "US",
        [typeof(TrainingFailed)] = "TF",
        [typeof(FaultsFired)] = "FF",
        [typeof(RunFinished)] = "RF",
        [typeof(RoundCompleted)] = "RM",
        [typeof(RunCompleted)] = "RD",
        [typeof(RunFailed)] = "RX",
        [typeof(StandbyJoin)] = "SJ",
        [typeof(StandbyAccepted)] = "SA",
        [typeof(StandbyRefused)] = "SX",
        [typeof(CheckpointReplica)] = "CR",
        [typeof(RevokedCertificates)] = "RV",
        [typeof(InSession)] = "IS",
    };

    /// <summary>The manifests, for tests that feed every one of them bad bytes.</summary>
    public static IReadOnlyCollection<string> AllManifests => Manifests.Values;

    public override string Manifest(object o) =>
        Manifests.TryGetValue(o.GetType(), out var m) ? m : throw new ArgumentException($"FedAvgSerializer cannot serialize {o.GetType()}");

    public override byte[] ToBinary(object obj)
    {
        var w = new WireWriter(EstimateSize(obj is InSession s ? s.Message : obj) + 32);
        w.Byte(FormatVersion);
        if (obj is InSession inSession)
        {
            // the session, then the message's own manifest and body, in the same array: no second copy
            if (!InSession.InSessionTypes.Contains(inSession.Message.GetType()))
                throw new ArgumentException($"{inSession.Message.GetType().Name} does not travel in a session");
            w.Bytes(inSession.Session.ToByteArray());
            w.String(Manifest(inSession.Message));
            WriteBody(ref w, inSession.Message);
        }
        else WriteBody(ref w, obj);
        return w.ToArray();
    }

    void WriteBody(ref WireWriter w, object obj)
    {
        switch (obj)
        {
            case JoinFederation m:
                w.String(m.NodeId);
                w.String(m.Federation);
                switch (m.Request)
                {
                    case ClientRange r: w.Byte(1); w.Int(r.First); w.Int(r.Last); break;
                    case OwnData o: w.Byte(2); w.Int(o.SampleCount); break;
                    default: throw new ArgumentException($"unknown client request {m.Request.GetType()}");
                }
                w.Bytes(m.Session.ToByteArray());
                WriteProof(ref w, m.Proof);
                break;
            case Welcome { Spec: var s } m:
                w.String(s.Federation); w.String(s.Dataset); w.String(s.Model); w.Int(s.Clients); w.String(s.Partition);
                w.Int(s.Seed); w.Bool(s.Standardize); w.ULong(s.LayoutHash);
                WriteProof(ref w, m.Proof);
                break;
            case JoinRefused m: w.Reason(m.Reason); break;
            case JoinHeldBack m: w.Reason(m.Reason); break;
            case RegisterClients m:
                w.String(m.NodeId);
                w.ULong(m.LayoutHash);
                w.Int(m.Clients.Count);
                foreach (var c in m.Clients)
                {
                    w.String(c.ClientId);
                    w.Int(c.SampleCount);
                    w.String(Akka.Serialization.Serialization.SerializedActorPath(c.Client));
                }
                break;
            case Registered m: w.String(m.NodeId); w.Int(m.Clients); break;
            case RegistrationRefused m: w.Reason(m.Reason); break;
            case RegisterAgain: break;
            case TrainRound m:
                w.Int(m.Round);
                w.Int(m.Attempt);
                w.Int(m.Clients.Count);
                foreach (var c in m.Clients)
                {
                    w.String(c.ClientId);
                    w.Int(c.ShuffleSeed);
                }
                WriteConfig(ref w, m.Config);
                WritePayload(ref w, m.Weights);
                break;
            case UpdateSubmitted m:
                w.Int(m.Round); w.String(m.ClientId); w.Int(m.SampleCount);
                w.Double(m.TrainLoss); w.Double(m.TrainAccuracy); w.Double(m.TrainSeconds);
                WritePayload(ref w, m.Weights);
                break;
            case TrainingFailed m: w.Int(m.Round); w.String(m.ClientId); w.Reason(m.Reason); break;
            case FaultsFired m:
                // every fault is of the message's client: its id goes once
                w.String(m.ClientId);
                w.Int(m.Faults.Count);
                foreach (var f in m.Faults)
                {
                    if (f.ClientId != m.ClientId) throw new ArgumentException($"a fault of {f.ClientId} in the report of {m.ClientId}");
                    w.Int(f.Round);
                    w.String(f.Behaviour);
                }
                break;
            case RunFinished m: w.Bool(m.Completed); w.Reason(m.Reason); break;
            case RoundCompleted { Metrics: var r }:
                w.Int(r.Round); w.Int(r.Sampled); w.Int(r.Succeeded); w.Int(r.Failed); w.Int(r.Attempts);
                w.Double(r.TestLoss); w.Double(r.TestAccuracy); w.Double(r.MeanTrainLoss);
                w.Double(r.TrainingSeconds); w.Double(r.TrainerBusySeconds); w.Double(r.AggregationSeconds);
                w.Double(r.EvaluationSeconds); w.Double(r.RoundSeconds);
                w.Int(r.RejectedOrEmpty.Count);
                foreach (var x in r.RejectedOrEmpty) { w.Int(x.Round); w.String(x.ClientId); w.Reason(x.Reason); }
                w.Int(r.FaultsOrEmpty.Count);
                foreach (var f in r.FaultsOrEmpty) { w.Int(f.Round); w.String(f.ClientId); w.String(f.Behaviour); }
                w.Double(r.MedianUpdateNorm ?? double.NaN);
                break;
            case RunCompleted m:
                w.Int(m.Rounds); w.Double(m.FinalAccuracy); w.Int(m.TargetReachedAtRound ?? -1);
                w.Floats(m.FinalWeights);
                break;
            case RunFailed m: w.Int(m.Round); w.Reason(m.Reason); break;
            case StandbyJoin m: w.String(m.Federation); w.String(m.Settings); w.Bytes(m.Session.ToByteArray()); WriteProof(ref w, m.Proof); break;
            case StandbyAccepted m: w.Int(m.Round); break;
            case StandbyRefused m: w.Reason(m.Reason); break;
            case CheckpointReplica m:
                w.Int(m.Round); w.Long(m.Length); w.ULong(m.Checksum);
                WriteStreamRef(ref w, m.Chunks);
                break;
            case RevokedCertificates m:
                w.Int(m.Serials.Count);
                foreach (var serial in m.Serials) w.String(serial);
                break;
            default:
                throw new ArgumentException($"FedAvgSerializer cannot serialize {obj.GetType()}");
        }
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        try
        {
            var r = new WireReader(bytes);
            byte version = r.Byte("format version");
            if (version != FormatVersion)
                throw new InvalidDataException($"format version {version}, this build reads version {FormatVersion}");
            object message = manifest == "IS" ? ReadInSession(ref r) : ReadBody(ref r, manifest);
            r.End();
            return message;
        }
        catch (UnknownManifest)
        {
            throw new SerializationException($"FedAvgSerializer: unknown manifest '{manifest}' ({bytes.Length} bytes); known: {string.Join(", ", Manifests.Values)}.");
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or FormatException or OverflowException or WeightTransferException)
        {
            throw new SerializationException($"FedAvgSerializer: malformed '{manifest}' message ({NameOf(manifest)}) of {bytes.Length} bytes: {e.Message}", e);
        }
    }

    InSession ReadInSession(ref WireReader r)
    {
        var session = ReadSession(ref r);
        string inner = r.String("manifest of the message in session");
        var type = Manifests.FirstOrDefault(kv => kv.Value == inner).Key;
        if (type is null || !InSession.InSessionTypes.Contains(type))
            throw new InvalidDataException($"{(inner.Length > 8 ? $"a manifest of {inner.Length} characters" : $"'{inner}'")} does not travel in a session");
        try
        {
            return new InSession(session, (IFedAvgMessage)ReadBody(ref r, inner));
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"its '{inner}' message ({type.Name}): {e.Message}", e);
        }
    }

    object ReadBody(ref WireReader r, string manifest) =>
            manifest switch
            {
                "JF" => new JoinFederation(r.String("node id"), r.String("federation"), r.Byte("request kind") switch
                {
                    1 => new ClientRange(r.Int("first client"), r.Int("last client")),
                    2 => new OwnData(r.Int("sample count")),
                    var k => throw new InvalidDataException($"unknown client request kind {k}"),
                }, ReadSession(ref r), ReadProof(ref r)),
                "WE" => new Welcome(new RunSpec(r.String("federation"), r.String("dataset"), r.String("model"), r.Int("clients"),
                    r.String("partition"), r.Int("seed"), r.Bool("standardize"), r.ULong("layout hash")), ReadProof(ref r)),
                "JR" => new JoinRefused(r.String("reason")),
                "JH" => new JoinHeldBack(r.String("reason")),
                "RC" => ReadRegisterClients(ref r),
                "RG" => new Registered(r.String("node id"), r.Int("clients")),
                "RR" => new RegistrationRefused(r.String("reason")),
                "RA" => RegisterAgain.Instance,
                "TR" => ReadTrainRound(ref r),
                "US" => new UpdateSubmitted(r.Int("round"), r.String("client id"), r.Int("sample count"),
                    r.Double("train loss"), r.Double("train accuracy"), r.Double("train seconds"), ReadPayload(ref r)),
                "TF" => new TrainingFailed(r.Int("round"), r.String("client id"), r.String("reason")),
                "FF" => ReadFaultsFired(ref r),
                "RF" => new RunFinished(r.Bool("completed"), r.String("reason")),
                "RM" => ReadRoundCompleted(ref r),
                "RD" => ReadRunCompleted(ref r),
                "RX" => new RunFailed(r.Int("round"), r.String("reason")),
                "SJ" => new StandbyJoin(r.String("federation"), r.String("settings"), ReadSession(ref r), ReadProof(ref r)),
                "SA" => new StandbyAccepted(r.Int("round")),
                "SX" => new StandbyRefused(r.String("reason")),
                "CR" => ReadCheckpointReplica(ref r),
                "RV" => ReadRevokedCertificates(ref r),
                _ => throw new UnknownManifest(),
            };

    static Guid ReadSession(ref WireReader r)
    {
        var session = r.Bytes("session");
        if (session.Length != 16) throw new InvalidDataException($"a session of {session.Length} bytes, expected 16");
        return new Guid(session);
    }

    static void WriteProof(ref WireWriter w, NodeProof? proof)
    {
        w.Bool(proof is not null);
        if (proof is null) return;
        w.Bytes(proof.Certificate);
        w.Bytes(proof.Signature);
    }

    static NodeProof? ReadProof(ref WireReader r)
    {
        if (!r.Bool("proof")) return null;
        var certificate = r.Bytes("proof certificate");
        if (certificate.Length is 0 or > NodeProof.MaxCertificateBytes)
            throw new InvalidDataException($"a proof certificate of {certificate.Length} bytes (1 to {NodeProof.MaxCertificateBytes})");
        var signature = r.Bytes("proof signature");
        if (signature.Length is 0 or > NodeProof.MaxSignatureBytes)
            throw new InvalidDataException($"a proof signature of {signature.Length} bytes (1 to {NodeProof.MaxSignatureBytes})");
        return new NodeProof(certificate, signature);
    }

    static string NameOf(string manifest) => Manifests.FirstOrDefault(kv => kv.Value == manifest).Key?.Name ?? "unknown";

    sealed class UnknownManifest : Exception;

    static RoundCompleted ReadRoundCompleted(ref WireReader r)
    {
        var m = new RoundMetrics(
            r.Int("round"), r.Int("sampled"), r.Int("succeeded"), r.Int("failed"), r.Int("attempts"),
            r.Double("test loss"), r.Double("test accuracy"), r.Double("train loss"),
            r.Double("training s"), r.Double("busy s"), r.Double("aggregation s"), r.Double("evaluation s"), r.Double("round s"));
        int rejected = r.Count("rejections", minBytesEach: 12);
        var rejections = new List<Rejection>(rejected);
        for (int i = 0; i < rejected; i++) rejections.Add(new Rejection(r.Int("rejected round"), r.String("rejected client"), r.String("rejection reason")));
        int fired = r.Count("faults", minBytesEach: 12);
        var faults = new List<FaultFired>(fired);
        for (int i = 0; i < fired; i++) faults.Add(new FaultFired(r.Int("fault round"), r.String("fault client"), r.String("fault behaviour")));
        double median = r.Double("median update norm");
        return new RoundCompleted(m with { Rejected = rejections, Faults = faults, MedianUpdateNorm = double.IsNaN(median) ? null : median });
    }

    static FaultsFired ReadFaultsFired(ref WireReader r)
    {
        string client = r.String("client id");
        int count = r.Count("faults", minBytesEach: 8);
        var faults = new List<FaultFired>(count);
        for (int i = 0; i < count; i++)
        {
            int round = r.Int("fault round");
            string behaviour = r.String("fault behaviour");
            if (behaviour.Length == 0) throw new InvalidDataException("a fault without a behaviour");
            faults.Add(new FaultFired(round, client, behaviour));
        }
        return new FaultsFired(client, faults);
    }

    RegisterClients ReadRegisterClients(ref WireReader r)
    {
        string node = r.String("node id");
        ulong hash = r.ULong("layout hash");
        int count = r.Count("clients", minBytesEach: 12);
        var clients = new List<ClientEntry>(count);
        for (int i = 0; i < count; i++)
            clients.Add(new ClientEntry(r.String("client id"), r.Int("sample count"), ResolveActor(r.String("client actor path"))));
        return new RegisterClients(node, hash, clients);
    }

    TrainRound ReadTrainRound(ref WireReader r)
    {
        int round = r.Int("round"), attempt = r.Int("attempt");
        int count = r.Count("clients", minBytesEach: 8);
        var clients = new List<ClientTask>(count);
        for (int i = 0; i < count; i++) clients.Add(new ClientTask(r.String("client id"), r.Int("shuffle seed")));
        var config = ReadConfig(ref r);
        return new TrainRound(round, attempt, clients, config, ReadPayload(ref r));
    }

    static RunCompleted ReadRunCompleted(ref WireReader r)
    {
        int rounds = r.Int("rounds");
        double accuracy = r.Double("final accuracy");
        int target = r.Int("target round");
        return new RunCompleted(rounds, accuracy, target < 0 ? null : target, r.Floats("final weights"));
    }

    // The round config goes by name, as (key, value) pairs: a strategy can add a key without a new format version.
    static void WriteConfig(ref WireWriter w, RoundConfig c)
    {
        w.Int(c.Count);
        foreach (var (key, value) in c.Entries)
        {
            w.String(key);
            w.Double(value);
        }
    }

    static RoundConfig ReadConfig(ref WireReader r)
    {
        int count = r.Count("config entries", minBytesEach: 12);
        var entries = new KeyValuePair<string, double>[count];
        for (int i = 0; i < count; i++)
        {
            string key = r.String("config key");
            if (key.Length == 0) throw new InvalidDataException("an empty config key");
            entries[i] = KeyValuePair.Create(key, r.Double(key));
        }
        return new RoundConfig(entries); // refuses a key given twice
    }

    void WritePayload(ref WireWriter w, WeightsPayload payload)
    {
        var h = payload.Header;
        w.Byte(h.FormatVersion); w.ULong(h.LayoutHash); w.Int(h.Round); w.String(h.ClientId); w.Int(h.SampleCount);
        w.Int(h.Length); w.ULong(h.Checksum);
        switch (payload)
        {
            case LocalWeights local:
                // an in-process hand-over carries no checksum of its own: the encoding adds one
                w.Byte(1);
                w.Floats(local.Weights);
                w.ULong(WeightStream.Checksum(local.Weights));
                break;
            case StreamedWeights streamed:
                w.Byte(2);
                WriteStreamRef(ref w, streamed.Chunks);
                break;
            case ChanneledWeights channeled:
                w.Byte(channeled.Pushed ? (byte)4 : (byte)3);
                w.Int(channeled.Port);
                w.Bytes(channeled.Ticket.ToByteArray());
                break;
            default:
                throw new ArgumentException($"unknown weights payload {payload.GetType()}");
        }
    }

    WeightsPayload ReadPayload(ref WireReader r)
    {
        var header = new WeightHeader(r.Byte("weights format"), r.ULong("layout hash"), r.Int("weights round"), r.String("weights client"),
            r.Int("weights samples"), r.Int("weights length"), r.ULong("weights checksum"));
        if (header.FormatVersion != WeightStream.FormatVersion)
            throw new InvalidDataException($"weights are format version {header.FormatVersion}, this build reads version {WeightStream.FormatVersion}");
        if (header.Length < 0) throw new InvalidDataException($"weights length {header.Length}");
        byte carrier = r.Byte("weights carrier");
        switch (carrier)
        {
            case 1:
                var weights = r.Floats("weights");
                if (weights.Length != header.Length)
                    throw new InvalidDataException($"header says {header.Length} weights, the message holds {weights.Length}");
                if (WeightStream.Checksum(weights) != r.ULong("inline checksum"))
                    throw new InvalidDataException("weights checksum mismatch");
                return new LocalWeights(header, weights);
            case 2:
                return new StreamedWeights(header, ReadStreamRef(ref r));
            case 3 or 4: // 4: the same, and the vector is pushed on the node's subscription
                int port = r.Int("weight channel port");
                if (port is < 1 or > 65535) throw new InvalidDataException($"weight channel port {port} is not a port");
                var ticket = r.Bytes("weight channel ticket");
                if (ticket.Length != 16) throw new InvalidDataException($"a weight channel ticket of {ticket.Length} bytes, expected 16");
                return new ChanneledWeights(header, port, new Guid(ticket), Pushed: carrier == 4);
            case var k:
                throw new InvalidDataException($"unknown weights carrier {k}");
        }
    }

    void WriteStreamRef(ref WireWriter w, ISourceRef<byte[]> chunks)
    {
        var serializer = system.Serialization.FindSerializerFor(chunks);
        w.Int(serializer.Identifier);
        w.String(Akka.Serialization.Serialization.ManifestFor(serializer, chunks));
        w.Bytes(serializer.ToBinary(chunks));
    }

    ISourceRef<byte[]> ReadStreamRef(ref WireReader r)
    {
        int serializerId = r.Int("stream ref serializer");
        string manifest = r.String("stream ref manifest");
        var bytes = r.Bytes("stream ref");
        // Only Akka.Streams' own stream-ref serializer may decode what is nested here: a peer cannot pick
        // another serializer (such as a type-naming JSON one) through this field.
        if (serializerId != StreamRefSerializerId)
            throw new InvalidDataException($"stream ref names serializer {serializerId}, expected {StreamRefSerializerId}");
        object decoded;
        try
        {
            decoded = system.Serialization.Deserialize(bytes, serializerId, manifest);
        }
        catch (Exception e)
        {
            throw new InvalidDataException($"stream ref does not decode: {e.Message}");
        }
        return decoded as ISourceRef<byte[]> ?? throw new InvalidDataException($"stream ref decodes to {decoded.GetType().Name}, not a source of byte chunks");
    }

    CheckpointReplica ReadCheckpointReplica(ref WireReader r)
    {
        int round = r.Int("round");
        if (round < 1) throw new InvalidDataException($"a checkpoint of round {round}");
        long length = r.Long("length");
        if (length is < 1 or > Transfer.CheckpointTransfer.MaxBytes)
            throw new InvalidDataException($"a checkpoint of {length} bytes (at most {Transfer.CheckpointTransfer.MaxBytes})");
        return new CheckpointReplica(round, length, r.ULong("checksum"), ReadStreamRef(ref r));
    }

    static RevokedCertificates ReadRevokedCertificates(ref WireReader r)
    {
        int count = r.Count("serials", minBytesEach: 5);
        if (count > RevokedCertificates.MaxPerMessage)
            throw new InvalidDataException($"{count} serials (at most {RevokedCertificates.MaxPerMessage} in one message)");
        var serials = new List<string>(count);
        for (int i = 0; i < count; i++)
        {
            string serial = r.String("serial");
            if (!Hosting.FederationCertificates.IsSerial(serial)) throw new InvalidDataException(
                    $"{(serial.Length > 64 ? $"a string of {serial.Length} characters" : $"'{serial}'")} is not a certificate serial number");
            serials.Add(serial);
        }
        return new RevokedCertificates(serials);
    }

    int? streamRefSerializerId;

    /// <summary>The identifier of Akka.Streams' serializer for stream refs (bound in its reference.conf).</summary>
    int StreamRefSerializerId => streamRefSerializerId ??= system.Serialization.FindSerializerForType(
        typeof(ISourceRef<byte[]>).Assembly.GetType("Akka.Streams.Implementation.StreamRef.SourceRefImpl", throwOnError: true)!).Identifier;

    IActorRef ResolveActor(string path)
    {
        if (!ActorPath.TryParse(path, out _)) throw new InvalidDataException($"'{path}' is not an actor path");
        return system.Provider.ResolveActorRef(path);
    }

    static int EstimateSize(object obj)
    {
        static int ProofSize(NodeProof? p) => p is null ? 0 : 8 + p.Certificate.Length + p.Signature.Length;
        static int PayloadSize(WeightsPayload p) => 96 + Encoding.UTF8.GetMaxByteCount(p.Header.ClientId.Length)
                                                    + (p is LocalWeights l ? 4 + l.Weights.Length * sizeof(float) : 1024);
        return obj switch
        {
            TrainRound t => 256 + t.Clients.Sum(c => 8 + Encoding.UTF8.GetMaxByteCount(c.ClientId.Length)) + PayloadSize(t.Weights),
            UpdateSubmitted u => 128 + Encoding.UTF8.GetMaxByteCount(u.ClientId.Length) + PayloadSize(u.Weights),
            RunCompleted c => 64 + c.FinalWeights.Length * sizeof(float),
            RegisterClients rc => 128 + rc.Clients.Count * 256,
            StandbyJoin j => 64 + Encoding.UTF8.GetMaxByteCount(j.Federation.Length + j.Settings.Length) + ProofSize(j.Proof),
            JoinFederation j => 96 + Encoding.UTF8.GetMaxByteCount(j.NodeId.Length + j.Federation.Length) + ProofSize(j.Proof),
            Welcome w => 256 + ProofSize(w.Proof),
            CheckpointReplica => 1024,
            RevokedCertificates v => 16 + v.Serials.Sum(serial => 4 + Encoding.UTF8.GetMaxByteCount(serial.Length)),
            _ => 256,
        };
    }

    /// <summary>Little-endian fields into one array that grows only if the estimate was short.</summary>
    ref struct WireWriter(int capacity)
    {
        byte[] buffer = new byte[Math.Max(16, capacity)];
        int position = 0;

        Span<byte> Take(int count)
        {
            if (position + count > buffer.Length) Array.Resize(ref buffer, Math.Max(buffer.Length * 2, position + count));
            var span = buffer.AsSpan(position, count);
            position += count;
            return span;
        }

        public void Byte(byte v) => Take(1)[0] = v;
        public void Bool(bool v) => Byte(v ? (byte)1 : (byte)0);
        public void Int(int v) => BinaryPrimitives.WriteInt32LittleEndian(Take(4), v);
        public void ULong(ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(Take(8), v);
        public void Long(long v) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), v);
        public void Double(double v) => BinaryPrimitives.WriteDoubleLittleEndian(Take(8), v);

        public void String(string v)
        {
            int count = Encoding.UTF8.GetByteCount(v);
            if (count > MaxStringBytes) throw new ArgumentException($"a string of {count} bytes (at most {MaxStringBytes})");
            Int(count);
            Encoding.UTF8.GetBytes(v, Take(count));
        }

        /// <summary>
        /// A reason, cut at <see cref="MaxStringBytes"/> (on a character, marked " [cut]") instead of refused: refused, its
        /// message could not be sent at all, so a client's TrainingFailed whose exception message was long (libtorch's
        /// carry a C++ backtrace) never reached the server, which then waited for the round's deadline.
        /// </summary>
        public void Reason(string v)
        {
            if (Encoding.UTF8.GetByteCount(v) > MaxStringBytes) v = Cut(v);
            String(v);
        }

        const string CutMark = " [cut]";

        static string Cut(string v)
        {
            int budget = MaxStringBytes - CutMark.Length, chars = Math.Min(v.Length, budget);
            while (true)
            {
                if (chars > 0 && char.IsHighSurrogate(v[chars - 1])) chars--; // never half a surrogate pair
                int over = Encoding.UTF8.GetByteCount(v.AsSpan(0, chars)) - budget;
                if (over <= 0) return string.Concat(v.AsSpan(0, chars), CutMark);
                chars -= Math.Max(1, over / 4); // a character is at most 4 bytes: never cuts more than needed by much
            }
        }

        public void Bytes(ReadOnlySpan<byte> v)
        {
            Int(v.Length);
            v.CopyTo(Take(v.Length));
        }

        public void Floats(float[] v)
        {
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("weights are little-endian float32");
            Int(v.Length);
            MemoryMarshal.AsBytes(v.AsSpan()).CopyTo(Take(v.Length * sizeof(float)));
        }

        public readonly byte[] ToArray() => position == buffer.Length ? buffer : buffer.AsSpan(0, position).ToArray();
    }

    /// <summary>Reads fields back; every read names its field when the bytes run out or make no sense.</summary>
    ref struct WireReader(byte[] bytes)
    {
        int position = 0;

        ReadOnlySpan<byte> Take(int count, string field)
        {
            if (count < 0 || count > bytes.Length - position)
                throw new InvalidDataException($"truncated at {field}: needs {count} bytes at offset {position}, {bytes.Length - position} remain");
            var span = bytes.AsSpan(position, count);
            position += count;
            return span;
        }

        public byte Byte(string field) => Take(1, field)[0];

        public bool Bool(string field) => Byte(field) switch
        {
            0 => false,
            1 => true,
            var b => throw new InvalidDataException($"{field}: {b} is not a boolean"),
        };

        public int Int(string field) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, field));
        public ulong ULong(string field) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, field));
        public long Long(string field) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, field));
        public double Double(string field) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, field));

        public string String(string field)
        {
            int count = Int(field + " length");
            if (count < 0 || count > MaxStringBytes) throw new InvalidDataException($"{field}: length {count} (at most {MaxStringBytes})");
            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Take(count, field));
            }
            catch (DecoderFallbackException)
            {
                throw new InvalidDataException($"{field}: not valid UTF-8");
            }
        }

        /// <summary>A count of items, each at least <paramref name="minBytesEach"/> long: refused if the bytes cannot hold them.</summary>
        public int Count(string field, int minBytesEach)
        {
            int count = Int(field + " count");
            if (count < 0 || (long)count * minBytesEach > bytes.Length - position)
                throw new InvalidDataException($"{field}: count {count} does not fit the {bytes.Length - position} bytes that remain");
            return count;
        }

        public byte[] Bytes(string field) => Take(Int(field + " length"), field).ToArray();

        public float[] Floats(string field)
        {
            int count = Int(field + " count");
            if (count < 0 || (long)count * sizeof(float) > bytes.Length - position)
                throw new InvalidDataException($"{field}: {count} floats claimed but only {bytes.Length - position} bytes remain");
            var values = GC.AllocateUninitializedArray<float>(count);
            Take(count * sizeof(float), field).CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
            return values;
        }

        public readonly void End()
        {
            if (position != bytes.Length) throw new InvalidDataException($"{bytes.Length - position} unexpected trailing bytes");
        }
    }
}
