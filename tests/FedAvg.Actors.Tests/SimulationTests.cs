using Akka.Configuration;
using FedAvg.Actors.Client;
using FedAvg.Actors.Faults;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core.Data;
using FedAvg.Core.Models;
using FedAvg.Core.Partitioning;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;
using FedAvg.Tests.Shared;

namespace FedAvg.Actors.Tests;

/// <summary>Whole federations on real MNIST (a subset), real libtorch and a real actor system.</summary>
public class SimulationTests
{
    // Every message between actors is serialized and deserialized, as it would be between nodes.
    static Config Akka => HoconFiles.Load("simulation.conf", overrides: "akka.actor.serialize-messages = on");

    static SimulationOptions Small(int trainers = 1, int rounds = 2, int clients = 4) =>
        SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", overrides: $$"""
            fedavg { model = seed001-2nn, clients = {{clients}}, partition = iid, rounds = {{rounds}}, fraction = 1.0,
                     local-epochs = 2, batch = 32, lr = 0.05, momentum = 0.5, seed = 3,
                     trainers = {{trainers}}, threads-per-trainer = 1, round-timeout = 2m }
            """));

    static LabeledImages Train => TestData.MnistTrain.Take(2400);
    static LabeledImages Test => TestData.MnistTest.Take(1000);

    static int[][] Shards(SimulationOptions o) =>
        Partitioner.Parse(o.Partition).Split(Train.LabelValues, 10, o.Clients, o.Seed);

    static Task<SimulationResult> Run(SimulationOptions o, Simulation? simulation = null) =>
        (simulation ?? new Simulation()).RunAsync(o, Akka, Train, Test, Shards(o));

    [Fact]
    public async Task Two_rounds_on_real_mnist_lift_accuracy_far_above_the_untrained_model()
    {
        var options = Small();
        using var model = ModelZoo.Create(options.Model, options.Seed);
        var untrained = Evaluator.Evaluate(model, Test);

        var result = await Run(options);

        Assert.True(result.Completed, result.FailureReason);
        Assert.Equal([1, 2], result.Rounds.Select(r => r.Round));
        Assert.All(result.Rounds, r => Assert.Equal((4, 4, 0), (r.Sampled, r.Succeeded, r.Failed)));
        Assert.True(result.Rounds[^1].TestAccuracy > untrained.Accuracy + 0.5,
            $"untrained {untrained.Accuracy:F3}, after 2 rounds {result.Rounds[^1].TestAccuracy:F3}");
        Assert.True(result.Rounds[1].TestLoss < result.Rounds[0].TestLoss);
    }

    [Fact]
    public async Task Same_seed_gives_bit_identical_weights_and_metrics_with_one_or_two_trainers()
    {
        var one = await Run(Small(trainers: 1));
        var two = await Run(Small(trainers: 2));
        Assert.True(one.Completed && two.Completed);
        Assert.Equal(one.FinalWeights, two.FinalWeights);
        Assert.Equal(one.Rounds.Select(r => (r.TestAccuracy, r.TestLoss, r.MeanTrainLoss)),
                     two.Rounds.Select(r => (r.TestAccuracy, r.TestLoss, r.MeanTrainLoss)));
    }

    [Fact]
    public async Task A_client_that_throws_is_restarted_and_the_round_completes_without_it()
    {
        var crashes = 0;
        var simulation = new Simulation
        {
            Faults = new FaultPlan([new FaultRule(FaultBehaviour.Crash, Clients: [2], ToRound: 1)], seed: 3, clientCount: 4),
            OnFault = _ => Interlocked.Increment(ref crashes),
        };
        var result = await Run(Small(), simulation);

        Assert.True(result.Completed, result.FailureReason);
        Assert.Equal(1, crashes);
        Assert.Equal([new FaultFired(1, "client-002", "crash")], result.Rounds[0].Faults!);
        Assert.Contains("injected crash", Assert.Single(result.Rounds[0].Rejected!).Reason);
        Assert.Equal((4, 3, 1), (result.Rounds[0].Sampled, result.Rounds[0].Succeeded, result.Rounds[0].Failed));
        // the restarted client trains again in round 2
        Assert.Equal((4, 4, 0), (result.Rounds[1].Sampled, result.Rounds[1].Succeeded, result.Rounds[1].Failed));
    }

    [Fact]
    public async Task A_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one()
    {
        string dir = TestData.TempDir();
        var uninterrupted = await Run(Small(rounds: 3));

        string checkpointPath = Path.Combine(dir, Checkpoint.FileName);
        var firstPart = await Run(Small(rounds: 2), new Simulation { CheckpointPath = checkpointPath });
        var checkpoint = Checkpoint.Load(checkpointPath, "seed001-2nn");
        Assert.Equal(2, checkpoint.Round);
        Assert.Equal(firstPart.FinalWeights, checkpoint.Weights);

        var resumed = await Run(Small(rounds: 3), new Simulation { ResumeFrom = checkpoint, CheckpointPath = checkpointPath });
        Assert.Equal([3], resumed.Rounds.Select(r => r.Round));
        Assert.Equal(uninterrupted.FinalWeights, resumed.FinalWeights);
        Assert.Equal(3, Checkpoint.Load(checkpointPath).Round);
    }

    [Fact]
    public async Task A_checkpoint_of_another_model_is_refused_before_training()
    {
        using var other = ModelZoo.Create("seed000-cnn");
        var foreign = new Checkpoint("seed000-cnn", WeightLayout.Of(other), 1, 3, Weights.Read(other, WeightLayout.Of(other)));
        var e = await Assert.ThrowsAsync<FedAvg.Core.DataException>(() => Run(Small(), new Simulation { ResumeFrom = foreign }));
        Assert.Contains("seed000-cnn", e.Message);
        Assert.Contains("seed001-2nn", e.Message);
    }
}
