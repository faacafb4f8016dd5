using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Server;
using FedAvg.Core.Models;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;
using FedAvg.Tests.Shared;

namespace FedAvg.Actors.Tests;

/// <summary>The server against TestProbe clients: what it sends, what it accepts, when it closes a round.</summary>
public sealed class ServerTests : TestKit
{
    const string Model = "seed001-2nn";
    static readonly TrainConfig Train = new(1, 10, 0.1);
    readonly TrainerPool pool = new(Model, 1, 1);
    readonly WeightLayout layout;
    readonly float[] initial;
    readonly TestProbe observer;

    // Evaluating the global model takes real libtorch time: allow for a loaded machine.
    public ServerTests() : base(HoconFiles.Load("simulation.conf", overrides: "akka.test.single-expect-default = 15s"))
    {
        using var model = ModelZoo.Create(Model, 1);
        layout = WeightLayout.Of(model);
        initial = Weights.Read(model, layout);
        observer = CreateTestProbe("observer");
    }

    IActorRef StartServer(int clients, double fraction, int rounds, TimeSpan? timeout = null, int minClients = 1, int attempts = 1) =>
        Sys.ActorOf(FederationServer.Props(
            new FedAvgStrategy(new FedAvgOptions(fraction, minClients, Train, Seed: 1)),
            new ServerSettings(Model, layout, rounds, clients, timeout ?? TimeSpan.FromMinutes(1), attempts, Seed: 1),
            initial, w => pool.Evaluate(w, TestData.MnistTest.Take(200)), observer));

    List<TestProbe> Join(IActorRef server, int count, params int[] samples)
    {
        var probes = Enumerable.Range(0, count).Select(i => CreateTestProbe($"client-{i}")).ToList();
        for (int i = 0; i < count; i++) probes[i].Send(server, new ClientAvailable($"client-{i}", samples.Length > i ? samples[i] : 100));
        return probes;
    }

    float[] Filled(float value) => Enumerable.Repeat(value, layout.TotalLength).ToArray();

    static UpdateSubmitted Update(int round, string id, float[] weights, int samples = 100) => new(round, id, weights, samples, 0.5, 0.8, 0.01);

    FedAvgStrategy Strategy(double fraction, int minClients = 1) => new(new FedAvgOptions(fraction, minClients, Train, Seed: 1));

    [Fact]
    public void Sampled_clients_get_the_same_global_weights_and_the_others_nothing()
    {
        var server = StartServer(clients: 6, fraction: 0.5, rounds: 1);
        var probes = Join(server, 6);
        var sampled = Strategy(0.5).ConfigureRound(1, probes.Select((_, i) => $"client-{i}").ToList()).Clients;
        Assert.Equal(3, sampled.Count);
        var requests = new List<TrainRound>();
        for (int i = 0; i < probes.Count; i++)
        {
            if (sampled.Contains($"client-{i}")) requests.Add(probes[i].ExpectMsg<TrainRound>());
            else probes[i].ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        }
        Assert.All(requests, r => Assert.Equal(1, r.Round));
        Assert.All(requests, r => Assert.Equal(initial, r.GlobalWeights));
        Assert.All(requests, r => Assert.Equal(Train, r.Config));
        Assert.Equal(3, requests.Select(r => r.ShuffleSeed).Distinct().Count()); // each client shuffles its own way
    }

    [Fact]
    public void Duplicate_stale_and_unsolicited_updates_are_ignored_and_the_round_closes_when_all_sampled_answered()
    {
        var server = StartServer(clients: 3, fraction: 1.0, rounds: 2);
        var probes = Join(server, 3, 100, 100, 200);
        foreach (var p in probes) p.ExpectMsg<TrainRound>(r => r.Round == 1);

        probes[0].Send(server, Update(1, "client-0", Filled(1f), samples: 100));
        probes[0].Send(server, Update(1, "client-0", Filled(1000f), samples: 100));   // duplicate: must not count
        probes[1].Send(server, Update(0, "client-1", Filled(1000f), samples: 100));   // stale round
        probes[1].Send(server, Update(2, "client-1", Filled(1000f), samples: 100));   // future round
        var stranger = CreateTestProbe();
        stranger.Send(server, Update(1, "client-9", Filled(1000f), samples: 100));    // never registered, never sampled
        probes[1].Send(server, Update(1, "client-1", Filled(2f), samples: 100));
        observer.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // client-2 has not answered: the round stays open
        probes[2].Send(server, Update(1, "client-2", Filled(6f), samples: 200));

        var done = observer.ExpectMsg<RoundCompleted>().Metrics;
        Assert.Equal((1, 3, 3, 0), (done.Round, done.Sampled, done.Succeeded, done.Failed));
        // round 2 starts from (100·1 + 100·2 + 200·6) / 400 = 3.75 everywhere
        var next = probes[0].ExpectMsg<TrainRound>(r => r.Round == 2);
        Assert.All(next.GlobalWeights, w => Assert.Equal(3.75f, w));
    }

    [Fact]
    public void The_deadline_closes_a_round_with_a_silent_client_and_the_run_completes_after_its_rounds()
    {
        var server = StartServer(clients: 2, fraction: 1.0, rounds: 2, timeout: TimeSpan.FromMilliseconds(500));
        var probes = Join(server, 2);
        for (int round = 1; round <= 2; round++)
        {
            var request = probes[0].ExpectMsg<TrainRound>(r => r.Round == round);
            probes[1].ExpectMsg<TrainRound>(r => r.Round == round); // and stays silent
            probes[0].Send(server, Update(round, "client-0", request.GlobalWeights));
            var metrics = observer.ExpectMsg<RoundCompleted>(TimeSpan.FromSeconds(10)).Metrics;
            Assert.Equal((round, 2, 1, 1), (metrics.Round, metrics.Sampled, metrics.Succeeded, metrics.Failed));
            Assert.True(metrics.RoundSeconds >= 0.5, $"closed after {metrics.RoundSeconds}s, before the deadline");
        }
        var end = observer.ExpectMsg<RunCompleted>();
        Assert.Equal(2, end.Rounds);
        // client-0 sent back what it got, twice: the average of one update is that update, up to float rounding
        for (int i = 0; i < initial.Length; i++) Assert.Equal(initial[i], end.FinalWeights[i], Math.Abs(initial[i]) * 1e-6);
    }

    [Fact]
    public void Too_few_updates_by_the_deadline_retries_the_missing_clients_then_fails_with_the_reason()
    {
        var server = StartServer(clients: 2, fraction: 1.0, rounds: 1, timeout: TimeSpan.FromMilliseconds(300), minClients: 2, attempts: 2);
        var probes = Join(server, 2);
        var request = probes[0].ExpectMsg<TrainRound>();
        probes[1].ExpectMsg<TrainRound>();
        probes[0].Send(server, Update(1, "client-0", request.GlobalWeights));
        // attempt 2 asks only the client that has not answered
        probes[1].ExpectMsg<TrainRound>(r => r.Round == 1, TimeSpan.FromSeconds(5));
        probes[0].ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        var failed = observer.ExpectMsg<RunFailed>(TimeSpan.FromSeconds(5));
        Assert.Contains("1 of the required 2", failed.Reason);
        Assert.Contains("2 attempts", failed.Reason);
    }

    [Fact]
    public void A_lying_client_is_counted_as_failed_not_averaged()
    {
        var server = StartServer(clients: 3, fraction: 1.0, rounds: 1);
        var probes = Join(server, 3);
        foreach (var p in probes) p.ExpectMsg<TrainRound>();
        probes[0].Send(server, Update(1, "client-0", Filled(2f)));
        var poisoned = Filled(2f);
        poisoned[17] = float.NaN;
        probes[1].Send(server, Update(1, "client-1", poisoned));                 // non-finite weights
        probes[2].Send(server, Update(1, "client-2", Filled(-50f), samples: 1_000_000)); // inflates its weight
        var metrics = observer.ExpectMsg<RoundCompleted>().Metrics;
        Assert.Equal((1, 2), (metrics.Succeeded, metrics.Failed));
        Assert.All(observer.ExpectMsg<RunCompleted>().FinalWeights, w => Assert.Equal(2f, w));
    }

    [Fact]
    public void A_client_that_terminates_mid_round_is_counted_as_failed()
    {
        var server = StartServer(clients: 2, fraction: 1.0, rounds: 1);
        var probes = Join(server, 2);
        var request = probes[0].ExpectMsg<TrainRound>();
        probes[1].ExpectMsg<TrainRound>();
        probes[0].Send(server, Update(1, "client-0", request.GlobalWeights));
        Sys.Stop(probes[1].Ref);
        var metrics = observer.ExpectMsg<RoundCompleted>().Metrics;
        Assert.Equal((1, 1), (metrics.Succeeded, metrics.Failed));
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing) pool.Dispose();
    }
}
