using Akka.Actor;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core.Data;
using FedAvg.Tests.Shared;

namespace FedAvg.Actors.Tests;

/// <summary>
/// A server and nodes as separate actor systems in this process, talking Akka.Remote over loopback TCP: the protocol,
/// the stream refs and membership end to end. (Process boundaries and SIGKILL are in FedAvg.Cli.Tests.)
/// </summary>
public class ClusterTests
{
    static SimulationOptions Small(int rounds = 2) =>
        SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", overrides: $$"""
            fedavg { model = seed001-2nn, clients = 4, partition = "iid:300", rounds = {{rounds}}, fraction = 1.0,
                     local-epochs = 1, batch = 32, lr = 0.05, momentum = 0.5, seed = 5,
                     trainers = 1, threads-per-trainer = 1, round-timeout = 2m }
            """));

    static Akka.Configuration.Config Layered => HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: "fedavg.cluster.leave-timeout = 10s");
    static ClusterSettings Settings => ClusterSettings.FromConfig(Layered);
    static DatasetStore Store => new(TestData.DataDir);
    static readonly Endpoint Loopback = new("127.0.0.1", null, 0);

    [Fact]
    public async Task A_server_and_two_nodes_over_loopback_give_the_same_bits_as_the_simulation()
    {
        var options = Small();
        var simulated = await new Simulation { TestSamples = 500 }.RunAsync(options, HoconFiles.Load("simulation.conf"), Store);

        var listening = new TaskCompletionSource<Address>(TaskCreationOptions.RunContinuationsAsynchronously);
        var server = new ClusterServer { TestSamples = 500, StartClients = 4, OnListening = a => listening.TrySetResult(a) }
            .RunAsync(options, Settings, Loopback, Layered, Store);
        var address = await listening.Task.WaitAsync(TimeSpan.FromSeconds(60));
        using var nodeA = new ClusterNode();
        using var nodeB = new ClusterNode();
        var a = nodeA.RunAsync(new NodeOptions("node-a", "127.0.0.1", address.Port!.Value, new ClientRange(0, 1), null, TestData.DataDir, 1, 1),
            Settings, Loopback, Layered);
        var b = nodeB.RunAsync(new NodeOptions("node-b", "127.0.0.1", address.Port!.Value, new ClientRange(2, 3), null, TestData.DataDir, 1, 1),
            Settings, Loopback, Layered);

        var result = await server.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.True(result.Completed, result.FailureReason);
        Assert.True((await a.WaitAsync(TimeSpan.FromSeconds(30))).Completed);
        Assert.True((await b.WaitAsync(TimeSpan.FromSeconds(30))).Completed);
        Assert.Equal(simulated.FinalWeights, result.FinalWeights);
        Assert.Equal(simulated.Rounds.Select(r => (r.TestAccuracy, r.TestLoss, r.MeanTrainLoss, r.Succeeded)),
                     result.Rounds.Select(r => (r.TestAccuracy, r.TestLoss, r.MeanTrainLoss, r.Succeeded)));
    }
}
