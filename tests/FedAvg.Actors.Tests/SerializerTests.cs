using System.Runtime.Serialization;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Serialization;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Tests;

public class SerializerTests() : TestKit(HoconFiles.Load("simulation.conf"))
{
    static readonly float[] SomeWeights = [1.5f, -2.25f, float.Epsilon, 3e38f, 0f];

    public static TheoryData<IFedAvgMessage> Messages => new()
    {
        new ClientAvailable("client-007", 450),
        new TrainRound(3, SomeWeights, new TrainConfig(10, 32, 0.01, 0.9, 1e-4), 12345),
        new UpdateSubmitted(3, "client-007", SomeWeights, 450, 0.25, 0.93, 1.75),
        new TrainingFailed(4, "client-001", "boom"),
        new RoundCompleted(new RoundMetrics(5, 10, 9, 1, 2, 0.1, 0.97, 0.2, 3.5, 6.9, 0.01, 0.4, 4.0)),
        new RunCompleted(11, 0.943, 9, SomeWeights),
        new RunCompleted(11, 0.943, null, []),
        new RunFailed(2, "too few clients"),
    };

    [Theory]
    [MemberData(nameof(Messages))]
    public void Every_protocol_message_round_trips_through_the_project_serializer(IFedAvgMessage message)
    {
        var serializer = Sys.Serialization.FindSerializerFor(message);
        Assert.IsType<FedAvgSerializer>(serializer);
        var bytes = serializer.ToBinary(message);
        string manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
        Assert.Equal(Describe(message), Describe(back));
    }

    [Fact]
    public void Weights_cost_four_bytes_each_on_the_wire()
    {
        var weights = new float[1_663_370];
        var serializer = Sys.Serialization.FindSerializerForType(typeof(TrainRound));
        var bytes = serializer.ToBinary(new TrainRound(1, weights, new TrainConfig(1, 1, 0.1), 0));
        Assert.InRange(bytes.Length, weights.Length * 4, weights.Length * 4 + 64);
    }

    [Fact]
    public void Truncated_or_garbage_bytes_raise_a_clear_serialization_error()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(UpdateSubmitted));
        var good = serializer.ToBinary(new UpdateSubmitted(1, "c", SomeWeights, 10, 0, 0, 0));
        var truncated = Assert.Throws<SerializationException>(() => serializer.FromBinary(good[..^3], "US"));
        Assert.Contains("'US'", truncated.Message);
        var trailing = Assert.Throws<SerializationException>(() => serializer.FromBinary([.. good, 0], "US"));
        Assert.Contains("trailing", trailing.Message);
        Assert.Throws<SerializationException>(() => serializer.FromBinary(good, "XX"));
        // a length prefix that claims more floats than the bytes hold
        var lying = (byte[])good.Clone();
        int lengthOffset = good.Length - SomeWeights.Length * 4 - 4;
        BitConverter.GetBytes(int.MaxValue).CopyTo(lying, lengthOffset);
        Assert.Contains("claims", Assert.Throws<SerializationException>(() => serializer.FromBinary(lying, "US")).Message);
    }

    static string Describe(object message) => message switch
    {
        TrainRound t => $"{t.Round}|{string.Join(",", t.GlobalWeights)}|{t.Config}|{t.ShuffleSeed}",
        UpdateSubmitted u => $"{u.Round}|{u.ClientId}|{string.Join(",", u.Weights)}|{u.SampleCount}|{u.TrainLoss}|{u.TrainAccuracy}|{u.TrainSeconds}",
        RunCompleted r => $"{r.Rounds}|{r.FinalAccuracy}|{r.TargetReachedAtRound}|{string.Join(",", r.FinalWeights)}",
        _ => message.ToString()!,
    };
}
