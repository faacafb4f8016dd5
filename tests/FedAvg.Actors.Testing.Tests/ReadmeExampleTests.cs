// Kept in step with README.md by hand: the test there must compile and pass as it is.
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Testing;
using FedAvg.Core.Data;

namespace FedAvg.Actors.Testing.Tests;

/// <summary>The README's example, verbatim (section "Test your federation's faults").</summary>
public class MyFaultTests
{
    [Fact]
    public async Task A_nan_update_is_rejected_and_the_crashed_client_comes_back()
    {
        var options = SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", overrides:
            "fedavg { model = seed001-2nn, clients = 6, partition = \"iid:300\", rounds = 2, local-epochs = 1 }"));
        var faults = FaultKit.For(options)
            .Add(Fault.NaN.OnClients(1))                 // every round
            .Add(Fault.Crash.OnClients(2).InRound(1));   // round 1 only
        var dir = Directory.CreateTempSubdirectory("my-fault-test-");
        try
        {
            string checkpoint = Path.Combine(dir.FullName, "checkpoint.bin");
            var result = await new Simulation { Faults = faults, CheckpointPath = checkpoint, TestSamples = 1000 }
                .RunAsync(options, HoconFiles.Load("simulation.conf"), new DatasetStore(Environment.GetEnvironmentVariable("FEDAVG_DATA") ?? "data"));

            Assert.True(result.Completed, result.FailureReason);
            CompletedRounds.Verify(result, options.Rounds, checkpoint); // every round's metrics and the checkpoint are there
            Assert.Equal([4, 5], result.Rounds.Select(r => r.Succeeded));
            Assert.Contains(result.Rounds[0].RejectedOrEmpty, r => r.ClientId == "client-001" && r.Reason.StartsWith("non-finite"));
            Assert.Equal(faults.Fired.Count, result.Rounds.Sum(r => r.FaultsOrEmpty.Count));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
