using System.Runtime.Serialization;
using Akka.Serialization;
using Akka.Streams;
using Akka.Streams.Dsl;
using Akka.TestKit.Xunit2;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Serialization;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Tests;

public class SerializerTests() : TestKit(HoconFiles.Load("simulation.conf"))
{
    static readonly float[] SomeWeights = [1.5f, -2.25f, float.Epsilon, 3e38f, 0f];
    static WeightHeader HeaderOf(float[] w, int round = 3, string client = "client-007", int samples = 450) =>
        WeightStream.Header(0xfeedbeefcafe1234UL, round, client, samples, w);

    static IFedAvgMessage[] All =>
    [
        new JoinFederation("node-a", "fedavg", new ClientRange(0, 49), Guid.NewGuid()),
        new JoinFederation("hospital-7", "fedavg", new OwnData(1234), Guid.NewGuid()),
        new JoinFederation("node-a", "fedavg", new ClientRange(0, 49), Guid.NewGuid(), new NodeProof([0x30, 0x82, 1, 2, 3], [9, 8, 7])),
        new Welcome(new RunSpec("fedavg", "mnist", "seed001-2nn", 100, "iid-balanced:450", 1, true, 0x0123456789abcdefUL)),
        new JoinRefused("clients 0-200 are outside 0..99"),
        new JoinHeldBack("node node-a at akka.tcp://fedavg@10.0.0.8:40123 is up and reachable"),
        new Registered("node-a", 50),
        new RegistrationRefused("layout"),
        RegisterAgain.Instance,
        new TrainRound(3, 2, [new ClientTask("client-007", 12345), new ClientTask("client-009", -7)], RoundConfig.From(new TrainConfig(10, 32, 0.01, 0.9, 1e-4, ProximalMu: 0.01)).With("a-strategy-key", -3.5),
            new LocalWeights(HeaderOf(SomeWeights, client: "", samples: 0), SomeWeights)),
        new UpdateSubmitted(3, "client-007", 450, 0.25, 0.93, 1.75, new LocalWeights(HeaderOf(SomeWeights), SomeWeights)),
        new TrainRound(4, 1, [new ClientTask("client-001", 1)], RoundConfig.Of(("epochs", 1)),
            new ChanneledWeights(HeaderOf(SomeWeights, client: "", samples: 0), 4054, Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"))),
        new TrainRound(5, 1, [new ClientTask("client-001", 1)], RoundConfig.Of(("epochs", 1)),
            new ChanneledWeights(HeaderOf(SomeWeights, client: "", samples: 0), 4054, Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1"), Pushed: true)),
        new UpdateSubmitted(4, "client-001", 450, 0.25, 0.93, 1.75, new ChanneledWeights(HeaderOf(SomeWeights), 65535, Guid.NewGuid())),
        new TrainingFailed(4, "client-001", "boom"),
        new FaultsFired("client-003", [new FaultFired(4, "client-003", "delay:20s"), new FaultFired(4, "client-003", "stale")]),
        new FaultsFired("client-004", [new FaultFired(5, "client-004", "scale:10")]),
        new RunFinished(true, "completed after round 11"),
        new RoundCompleted(new RoundMetrics(5, 10, 9, 1, 2, 0.1, 0.97, 0.2, 3.5, 6.9, 0.01, 0.4, 4.0)),
        new RoundCompleted(new RoundMetrics(5, 10, 8, 2, 2, 0.1, 0.97, 0.2, 3.5, 6.9, 0.01, 0.4, 4.0,
            Rejected: [new Rejection(4, "client-003", "stale (round 4, current 5)"), new Rejection(5, "client-007", "duplicate")],
            Faults: [new FaultFired(5, "client-003", "stale"), new FaultFired(5, "client-007", "twice")])),
        new RunCompleted(11, 0.943, 9, SomeWeights),
        new RunCompleted(11, 0.943, null, []),
        new RunFailed(2, "too few clients"),
        new StandbyJoin("fedavg", "fedavg.simulation {\n  rounds = 11\n}\n", Guid.NewGuid()),
        new StandbyJoin("fedavg", "fedavg.simulation {}", Guid.NewGuid(), new NodeProof([0x30, 1], [5, 6, 7])),
        new Welcome(new RunSpec("fedavg", "mnist", "seed001-2nn", 100, "iid", 1, true, 7), new NodeProof([0x30, 2], [8])),
        new StandbyAccepted(4),
        new StandbyRefused("its run settings differ from this server's: it has rounds = 12"),
        new RevokedCertificates(["0A1B2C3D4E5F60718293A4B5C6D7E8F9", "7f"]),
        new RevokedCertificates([]),
        new InSession(Guid.Parse("00112233-4455-6677-8899-aabbccddeeff"), new TrainRound(4, 1, [new ClientTask("client-001", 1)], RoundConfig.Of(("epochs", 1)),
            new ChanneledWeights(HeaderOf(SomeWeights, client: "", samples: 0), 4054, Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")))),
        new InSession(Guid.NewGuid(), new UpdateSubmitted(4, "client-001", 450, 0.25, 0.93, 1.75, new ChanneledWeights(HeaderOf(SomeWeights), 65535, Guid.NewGuid()))),
        new InSession(Guid.NewGuid(), RegisterAgain.Instance),
        new InSession(Guid.NewGuid(), new RunFinished(false, "the server gave up")),
    ];

    public static TheoryData<IFedAvgMessage> Messages => new(All);

    SerializerWithStringManifest Serializer => (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(IFedAvgMessage));

    object RoundTrip(object message)
    {
        var serializer = Sys.Serialization.FindSerializerFor(message);
        Assert.IsType<FedAvgSerializer>(serializer);
        var bytes = serializer.ToBinary(message);
        string manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        return Sys.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
    }

    [Theory]
    [MemberData(nameof(Messages))]
    public void Every_protocol_message_round_trips_through_the_project_serializer(IFedAvgMessage message) =>
        Assert.Equal(Describe(message), Describe(RoundTrip(message)));

    [Fact]
    public void A_proof_whose_certificate_or_signature_is_empty_or_too_long_is_refused_naming_which()
    {
        foreach (var (certificate, signature, fault) in new[]
                 {
                     (0, 64, "a proof certificate of 0 bytes"), (NodeProof.MaxCertificateBytes + 1, 64, $"a proof certificate of {NodeProof.MaxCertificateBytes + 1} bytes"),
                     (600, 0, "a proof signature of 0 bytes"), (600, NodeProof.MaxSignatureBytes + 1, $"a proof signature of {NodeProof.MaxSignatureBytes + 1} bytes"),
                 })
        {
            var bytes = Serializer.ToBinary(new JoinFederation("node-a", "fedavg", new ClientRange(0, 1), Guid.NewGuid(),
                new NodeProof(new byte[certificate], new byte[signature])));
            var error = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes, "JF"));
            Assert.Contains("malformed 'JF' message (JoinFederation)", error.Message);
            Assert.Contains(fault, error.Message);
        }
    }

    [Fact]
    public void Every_message_type_of_the_protocol_has_a_manifest_and_a_round_trip_case()
    {
        var types = typeof(IFedAvgMessage).Assembly.GetTypes().Where(t => !t.IsAbstract && typeof(IFedAvgMessage).IsAssignableFrom(t)).ToList();
        var covered = All.Select(m => m.GetType()).Append(typeof(RegisterClients)).Append(typeof(CheckpointReplica)).ToHashSet();
        Assert.All(types, t => Assert.Contains(t, covered));
        Assert.Equal(types.Count, FedAvgSerializer.AllManifests.Count);
    }

    [Fact]
    public void Registration_carries_actor_refs_that_resolve_back_to_the_same_actors()
    {
        var a = CreateTestProbe();
        var b = CreateTestProbe();
        var message = new RegisterClients("node-a", 42, [new ClientEntry("client-000", 10, a.Ref), new ClientEntry("client-001", 20, b.Ref)]);
        var back = (RegisterClients)RoundTrip(message);
        Assert.Equal(("node-a", 42UL), (back.NodeId, back.LayoutHash));
        Assert.Equal([a.Ref, b.Ref], back.Clients.Select(c => c.Client));
        Assert.Equal([10, 20], back.Clients.Select(c => c.SampleCount));
    }

    [Fact]
    public async Task Streamed_weights_cross_as_a_small_message_and_arrive_intact_in_chunks()
    {
        var materializer = Sys.Materializer();
        var weights = Enumerable.Range(0, 100_000).Select(i => i * 0.5f - 7f).ToArray(); // 400 KB: 7 chunks
        var header = HeaderOf(weights);
        var chunks = await Source.From(WeightStream.Chunks(weights)).RunWith(StreamRefs.SourceRef<byte[]>(), materializer);
        var message = new UpdateSubmitted(3, "client-007", 450, 0.25, 0.93, 1.75, new StreamedWeights(header, chunks));

        var bytes = Serializer.ToBinary(message);
        Assert.True(bytes.Length < 2_000, $"{bytes.Length} bytes: the vector must not travel inside the message");
        var back = (UpdateSubmitted)Serializer.FromBinary(bytes, Serializer.Manifest(message));
        Assert.Equal(header, back.Weights.Header);
        var received = await WeightStream.Receive(back.Weights, materializer);
        Assert.Equal(weights, received);
        Assert.All(WeightStream.Chunks(weights), c => Assert.True(c.Length <= WeightStream.ChunkBytes));
    }

    [Fact]
    public async Task A_checkpoint_replica_crosses_as_a_small_message_and_its_bytes_arrive_checked_in_chunks()
    {
        var materializer = Sys.Materializer();
        var file = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray(); // 5 chunks, the last one short
        var replica = await CheckpointTransfer.Offer(3, file, materializer);
        var bytes = Serializer.ToBinary(replica);
        Assert.True(bytes.Length < 2_000, $"{bytes.Length} bytes: the checkpoint must not travel inside the message");
        var back = (CheckpointReplica)Serializer.FromBinary(bytes, Serializer.Manifest(replica));
        Assert.Equal((3, file.LongLength, replica.Checksum), (back.Round, back.Length, back.Checksum));
        Assert.Equal(file, await CheckpointTransfer.Receive(back, materializer));

        // a lying or damaged sender: another checksum, or more or fewer bytes than announced, is refused by name
        var other = await CheckpointTransfer.Offer(3, file, materializer);
        var damaged = await Assert.ThrowsAsync<WeightTransferException>(() => CheckpointTransfer.Receive(other with { Checksum = other.Checksum ^ 1 }, materializer));
        Assert.Contains("checksum mismatch", damaged.Message);
        var longer = await CheckpointTransfer.Offer(3, file, materializer);
        Assert.Contains("more than the", (await Assert.ThrowsAsync<WeightTransferException>(() =>
            CheckpointTransfer.Receive(longer with { Length = file.Length - 1 }, materializer))).Message);
        var shorter = await CheckpointTransfer.Offer(3, file, materializer);
        Assert.Contains("ended after", (await Assert.ThrowsAsync<WeightTransferException>(() =>
            CheckpointTransfer.Receive(shorter with { Length = file.Length + 1 }, materializer))).Message);

        // and the header itself: a round before 1 or a length beyond the limit never reaches the stream
        var wire = Serializer.ToBinary(replica with { Round = 0 });
        Assert.Contains("checkpoint of round 0", Assert.Throws<System.Runtime.Serialization.SerializationException>(() =>
            Serializer.FromBinary(wire, "CR")).Message);
        wire = Serializer.ToBinary(replica with { Length = CheckpointTransfer.MaxBytes + 1 });
        Assert.Contains("at most", Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Serializer.FromBinary(wire, "CR")).Message);
    }

    [Fact]
    public async Task A_checkpoint_pull_that_never_ends_is_given_up_when_its_token_is_cancelled()
    {
        // a sender that sends one chunk and then nothing, as a server lost mid-stream: the stream ref need not fail
        var materializer = Sys.Materializer();
        var stalled = await Akka.Streams.Dsl.Source.Single(new byte[1000]).Concat(Akka.Streams.Dsl.Source.Never<byte[]>())
            .RunWith(Akka.Streams.Dsl.StreamRefs.SourceRef<byte[]>(), materializer);
        using var cancel = new CancellationTokenSource();
        var pull = CheckpointTransfer.Receive(new CheckpointReplica(3, 5000, 0, stalled), materializer, cancel.Token);
        Assert.False(pull.IsCompleted);
        cancel.Cancel();
        var e = await Assert.ThrowsAsync<WeightTransferException>(() => pull.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("given up", e.Message);
    }

    [Fact]
    public void A_streamed_vector_with_a_flipped_byte_a_missing_chunk_or_extra_bytes_is_refused()
    {
        var materializer = Sys.Materializer();
        var weights = Enumerable.Range(0, 40_000).Select(i => (float)Math.Sin(i)).ToArray();
        var header = HeaderOf(weights);

        string Fault(IEnumerable<byte[]> chunks)
        {
            var source = Source.From(chunks).RunWith(StreamRefs.SourceRef<byte[]>(), materializer).Result;
            var e = Assert.ThrowsAny<Exception>(() => WeightStream.Receive(new StreamedWeights(header, source), materializer).Result);
            return Assert.IsType<WeightTransferException>(e is AggregateException a ? a.InnerException : e).Message;
        }

        var flipped = WeightStream.Chunks(weights).ToList();
        flipped[1][100] ^= 0x10;
        Assert.Contains("checksum", Fault(flipped));
        Assert.Contains("ended after", Fault(WeightStream.Chunks(weights).SkipLast(1)));
        Assert.Contains("more than", Fault(WeightStream.Chunks(weights).Append(new byte[16])));
        Assert.Contains("at most", Fault(WeightStream.Chunks(weights).Take(1).Append(new byte[WeightStream.ChunkBytes + 1])));
    }

    [Fact]
    public void A_flipped_weight_byte_truncation_trailing_bytes_and_another_format_version_are_each_rejected_by_name()
    {
        var update = new UpdateSubmitted(1, "c", 10, 0, 0, 0, new LocalWeights(HeaderOf(SomeWeights, 1, "c", 10), SomeWeights));
        var good = Serializer.ToBinary(update);

        var flipped = (byte[])good.Clone();
        flipped[^9] ^= 0x01; // inside the last weight (the inline checksum takes the last 8 bytes)
        Assert.Contains("checksum", Assert.Throws<SerializationException>(() => Serializer.FromBinary(flipped, "US")).Message);

        var truncated = Assert.Throws<SerializationException>(() => Serializer.FromBinary(good[..^3], "US"));
        Assert.Contains("'US'", truncated.Message);
        Assert.Contains("UpdateSubmitted", truncated.Message);
        Assert.Contains("remain", truncated.Message); // says how many bytes were left
        Assert.Contains("trailing", Assert.Throws<SerializationException>(() => Serializer.FromBinary([.. good, 0], "US")).Message);

        var future = (byte[])good.Clone();
        future[0] = FedAvgSerializer.FormatVersion + 1;
        Assert.Contains("format version", Assert.Throws<SerializationException>(() => Serializer.FromBinary(future, "US")).Message);
        Assert.Contains("unknown manifest", Assert.Throws<SerializationException>(() => Serializer.FromBinary(good, "XX")).Message);
    }

    [Fact]
    public void A_fault_report_with_a_hostile_count_an_empty_behaviour_or_missing_bytes_is_refused_by_name()
    {
        var report = new FaultsFired("c", [new FaultFired(2, "c", "nan")]);
        var good = Serializer.ToBinary(report);
        // version (1), client id (4 + 1), count (4), round (4), behaviour (4 + 3)
        Assert.Equal(21, good.Length);
        var lying = (byte[])good.Clone();
        BitConverter.GetBytes(1_000_000).CopyTo(lying, 6);
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(lying, "FF"));
        Assert.Contains("FaultsFired", e.Message);
        Assert.Contains("faults: count 1000000 does not fit", e.Message);
        var empty = Serializer.ToBinary(new FaultsFired("c", [new FaultFired(2, "c", "")]));
        Assert.Contains("without a behaviour", Assert.Throws<SerializationException>(() => Serializer.FromBinary(empty, "FF")).Message);
        Assert.Contains("truncated at fault behaviour", Assert.Throws<SerializationException>(() => Serializer.FromBinary(good[..^2], "FF")).Message);
        // a report names one client: one that lists another's faults cannot even be written
        Assert.Throws<ArgumentException>(() => Serializer.ToBinary(new FaultsFired("c", [new FaultFired(2, "d", "nan")])));
    }

    [Fact]
    public void A_session_of_another_length_a_join_or_a_session_inside_one_and_a_bad_inner_message_are_refused_by_name()
    {
        var session = Guid.NewGuid();
        var good = Serializer.ToBinary(new InSession(session, new TrainingFailed(3, "client-001", "boom")));
        Assert.Equal(new InSession(session, new TrainingFailed(3, "client-001", "boom")), Serializer.FromBinary(good, "IS"));
        // version (1), session (4 + 16), manifest (4 + 2), then TrainingFailed's body
        var shortSession = (byte[])good.Clone();
        BitConverter.GetBytes(15).CopyTo(shortSession, 1);
        Assert.Contains("session", Assert.Throws<SerializationException>(() => Serializer.FromBinary(shortSession, "IS")).Message);
        foreach (var (manifest, name) in new[] { ("JF", "'JF'"), ("IS", "'IS'"), ("SJ", "'SJ'"), ("ZZ", "'ZZ'") })
        {
            var other = (byte[])good.Clone();
            System.Text.Encoding.ASCII.GetBytes(manifest).CopyTo(other, 25);
            var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(other, "IS"));
            Assert.Contains($"{name} does not travel in a session", e.Message);
            Assert.Contains("InSession", e.Message);
        }
        var cut = Assert.Throws<SerializationException>(() => Serializer.FromBinary(good[..^2], "IS"));
        Assert.Contains("its 'TF' message (TrainingFailed): truncated at reason", cut.Message);
        // and none can be written
        Assert.Throws<ArgumentException>(() => Serializer.ToBinary(new InSession(session, new InSession(session, RegisterAgain.Instance))));
        Assert.Throws<ArgumentException>(() => Serializer.ToBinary(new InSession(session, new JoinFederation("n", "f", new ClientRange(0, 0), session))));
    }

    [Fact]
    public void Revocations_that_are_not_serials_or_too_many_for_one_message_are_refused_by_name()
    {
        // a standby adds what it is sent to its revoked list: only serial numbers, as revoked.txt holds them
        foreach (var bad in new[] { "not-a-serial", "", new string('A', 65), "0A 1B" })
        {
            var bytes = Serializer.ToBinary(new RevokedCertificates(["0A", bad]));
            var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes, "RV"));
            Assert.Contains("RevokedCertificates", e.Message);
            Assert.Contains("is not a certificate serial number", e.Message);
            Assert.True(e.Message.Length < 400, e.Message); // a hostile string is named by its length, not echoed
        }
        var many = Serializer.ToBinary(new RevokedCertificates(Enumerable.Range(0, RevokedCertificates.MaxPerMessage + 1).Select(i => i.ToString("X")).ToList()));
        Assert.True(many.Length < 128_000); // it would fit a frame; the limit keeps the longest serials inside one too
        Assert.Contains($"{RevokedCertificates.MaxPerMessage + 1} serials (at most {RevokedCertificates.MaxPerMessage}",
            Assert.Throws<SerializationException>(() => Serializer.FromBinary(many, "RV")).Message);
        var longest = Serializer.ToBinary(new RevokedCertificates(Enumerable.Repeat(new string('F', 64), RevokedCertificates.MaxPerMessage).ToList()));
        Assert.True(longest.Length < 128_000, $"{longest.Length} bytes");
    }

    [Fact]
    public void A_reason_longer_than_a_wire_string_is_cut_to_fit_and_its_message_still_crosses()
    {
        // Reasons are free text, often an exception's message (libtorch's carry its C++ backtrace). Refused past 16 KiB,
        // a TrainingFailed never left its node (a message its serializer refuses cannot be sent) and the server waited
        // for the round's deadline; a RunFinished never told the nodes that the run was over.
        string reason = "injected: " + string.Concat(Enumerable.Repeat("frame #7: c10::Error::Error(…) + 0x8c ✓ ", 800));
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(reason) > 16 * 1024);
        IFedAvgMessage[] messages =
        [
            new TrainingFailed(4, "client-001", reason), new RunFinished(false, reason), new JoinRefused(reason),
            new RegistrationRefused(reason), new RunFailed(3, reason),
            new RoundCompleted(new RoundMetrics(5, 1, 0, 1, 1, 0.1, 0.9, 0.2, 1, 1, 0, 0, 1, Rejected: [new Rejection(5, "client-001", reason)])),
        ];
        foreach (var message in messages)
        {
            string got = RoundTrip(message) switch
            {
                TrainingFailed t => t.Reason,
                RunFinished f => f.Reason,
                JoinRefused j => j.Reason,
                RegistrationRefused r => r.Reason,
                RunFailed x => x.Reason,
                RoundCompleted c => Assert.Single(c.Metrics.RejectedOrEmpty).Reason,
                var other => throw new InvalidOperationException($"{other}"),
            };
            Assert.True(System.Text.Encoding.UTF8.GetByteCount(got) <= 16 * 1024, $"{message.GetType().Name}: {got.Length} chars");
            Assert.EndsWith(" [cut]", got);
            Assert.StartsWith(got[..^" [cut]".Length], reason);
        }
        // ids and names are not free text: a client id past the limit is still refused, not cut into another id
        Assert.Throws<ArgumentException>(() => Serializer.ToBinary(new TrainingFailed(4, new string('x', 20_000), "boom")));
    }

    [Fact]
    public void Hostile_lengths_are_refused_before_anything_is_allocated()
    {
        var update = new UpdateSubmitted(1, "c", 10, 0, 0, 0, new LocalWeights(HeaderOf(SomeWeights, 1, "c", 10), SomeWeights));
        var good = Serializer.ToBinary(update);
        // the float count stands just before the weights, which the 8-byte inline checksum follows
        var lying = (byte[])good.Clone();
        BitConverter.GetBytes(int.MaxValue).CopyTo(lying, good.Length - 8 - SomeWeights.Length * 4 - 4);
        Assert.Contains("claimed", Assert.Throws<SerializationException>(() => Serializer.FromBinary(lying, "US")).Message);
        // a string length of 2 GB right after the round
        var longString = (byte[])good.Clone();
        BitConverter.GetBytes(int.MaxValue).CopyTo(longString, 5);
        Assert.Contains("client id", Assert.Throws<SerializationException>(() => Serializer.FromBinary(longString, "US")).Message);
    }

    [Fact]
    public void Every_prefix_and_a_thousand_mutations_of_every_message_fail_only_with_a_serialization_error()
    {
        var rng = new Random(7);
        foreach (var message in All)
        {
            string manifest = Serializer.Manifest(message);
            var good = Serializer.ToBinary(message);
            for (int n = 0; n < good.Length; n++)
                Assert.Throws<SerializationException>(() => Serializer.FromBinary(good[..n], manifest));
            for (int i = 0; i < 1000; i++)
            {
                var bad = (byte[])good.Clone();
                for (int flips = rng.Next(1, 4); flips > 0; flips--) bad[rng.Next(bad.Length)] = (byte)rng.Next(256);
                try
                {
                    Serializer.FromBinary(bad, manifest); // a mutation may still be a valid message
                }
                catch (SerializationException)
                {
                }
            }
        }
    }

    [Fact]
    public void Nothing_falls_back_to_json_a_type_without_a_binding_cannot_be_sent_and_json_bytes_are_refused()
    {
        // float[] and an arbitrary record have no binding: Akka's default would have sent them as Newtonsoft JSON
        foreach (var message in new object[] { new float[] { 1f, 2f }, new Uri("https://example.org") })
            Assert.Throws<SerializationException>(() => Sys.Serialization.FindSerializerFor(message).ToBinary(message));
        var bytes = System.Text.Encoding.UTF8.GetBytes("""{"$type":"System.IO.FileInfo, System.IO.FileSystem","fileName":"/etc/passwd"}""");
        var refused = Assert.Throws<SerializationException>(() => Sys.Serialization.Deserialize(bytes, RefusingSerializer.JsonIdentifier, typeof(object)));
        Assert.Contains("accepts no JSON", refused.Message);
    }

    static string Describe(object message) => message switch
    {
        TrainRound t => $"{t.Round}|{t.Attempt}|{string.Join(",", t.Clients)}|{string.Join(",", t.Config.Entries)}|{Describe(t.Weights)}",
        UpdateSubmitted u => $"{u.Round}|{u.ClientId}|{u.SampleCount}|{u.TrainLoss}|{u.TrainAccuracy}|{u.TrainSeconds}|{Describe(u.Weights)}",
        LocalWeights w => $"{w.Header}|{string.Join(",", w.Weights)}",
        FaultsFired f => $"{f.ClientId}|{string.Join(",", f.Faults.Select(x => (x.Round, x.ClientId, x.Behaviour)))}",
        RoundCompleted { Metrics: var m } => $"{(m with { Rejected = null, Faults = null })}|{string.Join(",", m.RejectedOrEmpty)}|{string.Join(",", m.FaultsOrEmpty)}",
        RunCompleted r => $"{r.Rounds}|{r.FinalAccuracy}|{r.TargetReachedAtRound}|{string.Join(",", r.FinalWeights)}",
        RevokedCertificates v => string.Join(",", v.Serials),
        JoinFederation { Proof: { } p } j => $"{j with { Proof = null }}|{Describe(p)}",
        Welcome { Proof: { } p } w => $"{w with { Proof = null }}|{Describe(p)}",
        StandbyJoin { Proof: { } p } j => $"{j with { Proof = null }}|{Describe(p)}",
        NodeProof p => $"{Convert.ToHexString(p.Certificate)}|{Convert.ToHexString(p.Signature)}",
        InSession i => $"{i.Session}|{i.Message.GetType().Name}|{Describe(i.Message)}",
        _ => message.ToString()!,
    };
}
