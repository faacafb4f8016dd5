using System.Runtime.InteropServices;
using System.Runtime.Serialization;
using System.Text;
using Akka.Actor;
using Akka.Serialization;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Serialization;

/// <summary>
/// Compact binary encoding of the protocol. Weights travel as raw little-endian float32, so a model of
/// 1.66 M parameters costs 6.65 MB on the wire and one memcpy each way. Malformed bytes from the network
/// raise a <see cref="SerializationException"/> that names the message and what is wrong.
/// </summary>
public sealed class FedAvgSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 4242;
    public override int Identifier => Id;

    const string ClientAvailableManifest = "CA";
    const string TrainRoundManifest = "TR";
    const string UpdateSubmittedManifest = "US";
    const string TrainingFailedManifest = "TF";
    const string RoundCompletedManifest = "RC";
    const string RunCompletedManifest = "RD";
    const string RunFailedManifest = "RF";

    public override string Manifest(object o) => o switch
    {
        ClientAvailable => ClientAvailableManifest,
        TrainRound => TrainRoundManifest,
        UpdateSubmitted => UpdateSubmittedManifest,
        TrainingFailed => TrainingFailedManifest,
        RoundCompleted => RoundCompletedManifest,
        RunCompleted => RunCompletedManifest,
        RunFailed => RunFailedManifest,
        _ => throw new ArgumentException($"FedAvgSerializer cannot serialize {o.GetType()}"),
    };

    public override byte[] ToBinary(object obj)
    {
        using var stream = new MemoryStream(obj is TrainRound t ? t.GlobalWeights.Length * 4 + 64
            : obj is UpdateSubmitted u ? u.Weights.Length * 4 + 128 : 64);
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            switch (obj)
            {
                case ClientAvailable m:
                    w.Write(m.ClientId);
                    w.Write(m.SampleCount);
                    break;
                case TrainRound m:
                    w.Write(m.Round);
                    WriteConfig(w, m.Config);
                    w.Write(m.ShuffleSeed);
                    WriteWeights(w, m.GlobalWeights);
                    break;
                case UpdateSubmitted m:
                    w.Write(m.Round);
                    w.Write(m.ClientId);
                    w.Write(m.SampleCount);
                    w.Write(m.TrainLoss);
                    w.Write(m.TrainAccuracy);
                    w.Write(m.TrainSeconds);
                    WriteWeights(w, m.Weights);
                    break;
                case TrainingFailed m:
                    w.Write(m.Round);
                    w.Write(m.ClientId);
                    w.Write(m.Reason);
                    break;
                case RoundCompleted { Metrics: var r }:
                    w.Write(r.Round); w.Write(r.Sampled); w.Write(r.Succeeded); w.Write(r.Failed); w.Write(r.Attempts);
                    w.Write(r.TestLoss); w.Write(r.TestAccuracy); w.Write(r.MeanTrainLoss);
                    w.Write(r.TrainingSeconds); w.Write(r.TrainerBusySeconds); w.Write(r.AggregationSeconds);
                    w.Write(r.EvaluationSeconds); w.Write(r.RoundSeconds);
                    break;
                case RunCompleted m:
                    w.Write(m.Rounds);
                    w.Write(m.FinalAccuracy);
                    w.Write(m.TargetReachedAtRound ?? -1);
                    WriteWeights(w, m.FinalWeights);
                    break;
                case RunFailed m:
                    w.Write(m.Round);
                    w.Write(m.Reason);
                    break;
                default:
                    throw new ArgumentException($"FedAvgSerializer cannot serialize {obj.GetType()}");
            }
        }
        return stream.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, writable: false), Encoding.UTF8);
            object message = manifest switch
            {
                ClientAvailableManifest => new ClientAvailable(r.ReadString(), r.ReadInt32()),
                TrainRoundManifest => ReadTrainRound(r),
                UpdateSubmittedManifest => ReadUpdate(r),
                TrainingFailedManifest => new TrainingFailed(r.ReadInt32(), r.ReadString(), r.ReadString()),
                RoundCompletedManifest => new RoundCompleted(new RoundMetrics(
                    r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(),
                    r.ReadDouble(), r.ReadDouble(), r.ReadDouble(),
                    r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble())),
                RunCompletedManifest => ReadRunCompleted(r),
                RunFailedManifest => new RunFailed(r.ReadInt32(), r.ReadString()),
                _ => throw new SerializationException($"FedAvgSerializer: unknown manifest '{manifest}'."),
            };
            if (r.BaseStream.Position != bytes.Length)
                throw new InvalidDataException($"{bytes.Length - r.BaseStream.Position} unexpected trailing bytes");
            return message;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or FormatException)
        {
            throw new SerializationException($"FedAvgSerializer: malformed '{manifest}' message of {bytes.Length} bytes: {e.Message}", e);
        }
    }

    static UpdateSubmitted ReadUpdate(BinaryReader r)
    {
        int round = r.ReadInt32();
        string clientId = r.ReadString();
        int samples = r.ReadInt32();
        double loss = r.ReadDouble(), accuracy = r.ReadDouble(), seconds = r.ReadDouble();
        // The aggregation returns an update's vector once folded: renting it here lets a server node reuse them too.
        return new UpdateSubmitted(round, clientId, ReadWeights(r, WeightBuffers.Rent), samples, loss, accuracy, seconds);
    }

    static TrainRound ReadTrainRound(BinaryReader r)
    {
        int round = r.ReadInt32();
        var config = new TrainConfig(r.ReadInt32(), r.ReadInt32(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble());
        int seed = r.ReadInt32();
        return new TrainRound(round, ReadWeights(r), config, seed);
    }

    static RunCompleted ReadRunCompleted(BinaryReader r)
    {
        int rounds = r.ReadInt32();
        double accuracy = r.ReadDouble();
        int target = r.ReadInt32();
        return new RunCompleted(rounds, accuracy, target < 0 ? null : target, ReadWeights(r));
    }

    static void WriteConfig(BinaryWriter w, TrainConfig c)
    {
        w.Write(c.Epochs);
        w.Write(c.BatchSize);
        w.Write(c.LearningRate);
        w.Write(c.Momentum);
        w.Write(c.WeightDecay);
    }

    static void WriteWeights(BinaryWriter w, float[] weights)
    {
        w.Write(weights.Length);
        w.Write(MemoryMarshal.AsBytes(weights.AsSpan()));
    }

    static float[] ReadWeights(BinaryReader r, Func<int, float[]>? allocate = null)
    {
        int count = r.ReadInt32();
        long remaining = r.BaseStream.Length - r.BaseStream.Position;
        if (count < 0 || (long)count * sizeof(float) > remaining)
            throw new InvalidDataException($"weight vector claims {count} floats but only {remaining} bytes remain");
        var weights = allocate is null ? new float[count] : allocate(count);
        r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(weights.AsSpan()));
        return weights;
    }
}
