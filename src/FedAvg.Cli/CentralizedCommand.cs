using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using FedAvg.Core;
using FedAvg.Core.Native;
using FedAvg.Core.Data;
using FedAvg.Core.Models;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;
using Spectre.Console;

namespace FedAvg.Cli;

/// <summary>`fedavg centralized`: the baseline every federated run is compared with — one model, all the data.</summary>
public static class CentralizedCommand
{
    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var dataset = CommonOptions.Dataset();
        var model = CommonOptions.Model("seed001-2nn");
        var epochs = CommonOptions.Value("--epochs", 10, "Passes over the training set.");
        var batch = CommonOptions.Value("--batch", 32, "Mini-batch size.");
        var lr = CommonOptions.Value("--lr", 0.01, "SGD learning rate.");
        var momentum = CommonOptions.Value("--momentum", 0.9, "SGD momentum.");
        var weightDecay = CommonOptions.Value("--weight-decay", 0.0, "L2 weight decay.");
        var seed = CommonOptions.Value("--seed", 1, "Seed for initialisation and shuffling.");
        var threads = CommonOptions.Value("--threads", Environment.ProcessorCount, "libtorch intra-op threads.");
        var standardize = CommonOptions.Value("--standardize", false, "Standardize pixels with the dataset's mean and std (else [0,1]).");
        var output = new Option<string?>("--out") { Description = "CSV file for the per-epoch table (default: runs/centralized-DATASET-MODEL.csv)." };

        var command = new Command("centralized", "Train one model on the whole training set and report train and test accuracy per epoch.")
        {
            dataDir, dataset, model, epochs, batch, lr, momentum, weightDecay, seed, threads, standardize, output,
        };
        command.SetAction(parse =>
        {
            NativeTuning.Apply(); // this host's process-wide native settings, before any model exists
            var info = DatasetCatalog.Get(parse.GetValue(dataset)!);
            string modelName = parse.GetValue(model)!;
            ModelZoo.Validate(modelName);
            var config = new TrainConfig(parse.GetValue(epochs), parse.GetValue(batch), parse.GetValue(lr),
                parse.GetValue(momentum), parse.GetValue(weightDecay));
            config.Validate();
            int threadCount = parse.GetValue(threads);
            Require.AtLeast(threadCount, 1, "--threads");
            string csvPath = parse.GetValue(output) ?? Path.Combine("runs", $"centralized-{info.Name}-{modelName}.csv");
            OutputPath.CheckFile(csvPath, "--out"); // before the training whose table it holds, not after
            return Execute(new DatasetStore(parse.GetValue(dataDir)!), info, modelName, config, parse.GetValue(seed),
                threadCount, parse.GetValue(standardize), csvPath);
        });
        return command;
    }

    static int Execute(DatasetStore store, DatasetInfo info, string modelName, TrainConfig config, int seed,
        int threads, bool standardize, string csvPath)
    {
        NativeTuning.SetIntraOpThreads(threads);
        var (train, test) = store.Load(info, standardize);
        using var _train = train;
        using var _test = test;
        using var trainer = new LocalTrainer(modelName);
        using var initial = ModelZoo.Create(modelName, seed);
        var weights = Weights.Read(initial, WeightLayout.Of(initial));

        AnsiConsole.MarkupLine($"[bold]Centralized[/] {info.Name} · {modelName} ({Weights.ParameterCount(initial):N0} parameters) · " +
                               $"E={config.Epochs} B={config.BatchSize} lr={config.LearningRate} momentum={config.Momentum} · " +
                               $"{threads} thread(s) · malloc tuned: {NativeTuning.MallocTuned} · MKL: {MklDispatch.Status}");
        var csv = new StringBuilder("epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n");
        var table = new Table().AddColumns("epoch", "train loss", "train acc", "test loss", "test acc", "seconds");
        var clock = Stopwatch.StartNew();
        var all = Enumerable.Range(0, train.Count).ToArray();
        void Train(Action afterEpoch) =>
            trainer.Train(weights, train, all, config, seed, report =>
            {
                var evaluation = Evaluator.Evaluate(report.Model, test);
                double seconds = clock.Elapsed.TotalSeconds;
                csv.Append(CultureInfo.InvariantCulture,
                    $"{report.Epoch},{report.MeanLoss:F6},{report.Accuracy:F4},{evaluation.Loss:F6},{evaluation.Accuracy:F4},{seconds:F1}\n");
                table.AddRow(report.Epoch.ToString(), report.MeanLoss.ToString("F4"), report.Accuracy.ToString("F4"),
                    evaluation.Loss.ToString("F4"), evaluation.Accuracy.ToString("F4"), seconds.ToString("F1"));
                afterEpoch();
            });
        if (AnsiConsole.Profile.Capabilities.Interactive)
        {
            AnsiConsole.Live(table).Start(ctx => Train(ctx.Refresh));
        }
        else
        {
            Train(() => { });
            AnsiConsole.Write(table);
        }
        try
        {
            AtomicFile.WriteAllText(csvPath, csv.ToString());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw OutputPath.WriteFailed(csvPath, e); // the table above still holds every epoch
        }
        AnsiConsole.MarkupLine($"Wrote [green]{Markup.Escape(csvPath)}[/].");
        return ExitCodes.Success;
    }
}
