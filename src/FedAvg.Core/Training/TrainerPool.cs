using System.Collections.Concurrent;
using System.Diagnostics;
using FedAvg.Core.Data;
using FedAvg.Core.Runtime;

namespace FedAvg.Core.Training;

/// <summary>
/// P dedicated threads, each owning one <see cref="LocalTrainer"/> (one module) with T libtorch intra-op threads.
/// Clients borrow a trainer for the length of one job, so memory holds P modules however many clients exist,
/// and training never runs on a thread pool that something else (such as an actor dispatcher) relies on.
/// </summary>
public sealed class TrainerPool : IDisposable
{
    readonly BlockingCollection<Job> queue = new();
    readonly Thread[] threads;
    readonly string modelName;
    long busyTicks;

    public int Trainers { get; }
    public int ThreadsPerTrainer { get; }

    /// <summary>Total time trainer threads spent on jobs since the pool started.</summary>
    public TimeSpan BusyTime => TimeSpan.FromTicks(Interlocked.Read(ref busyTicks));

    public TrainerPool(string modelName, int trainers, int threadsPerTrainer)
    {
        Models.ModelZoo.Validate(modelName);
        Require.AtLeast(trainers, 1, "trainers");
        Require.AtLeast(threadsPerTrainer, 1, "threads-per-trainer");
        NativeTuning.Apply();
        this.modelName = modelName;
        Trainers = trainers;
        ThreadsPerTrainer = threadsPerTrainer;
        threads = Enumerable.Range(0, trainers).Select(i => new Thread(Work)
        {
            IsBackground = true,
            Name = $"fedavg-trainer-{i}",
        }).ToArray();
        foreach (var t in threads) t.Start();
    }

    /// <summary>The usual choice: as many one-thread trainers as cores (measured fastest here, see docs/benchmarks.md).</summary>
    public static (int Trainers, int Threads) DefaultShape(int cores) => (Math.Max(1, cores), 1);

    public Task<TrainResult> Train(float[] globalWeights, LabeledImages data, int[] indices, TrainConfig config, int seed) =>
        Submit(trainer => trainer.Train(globalWeights, data, indices, config, seed));

    /// <summary>Evaluates on all trainers at once, each on a contiguous run of batches; bit-identical for any P.</summary>
    public async Task<Evaluation> Evaluate(float[] weights, LabeledImages data, int batchSize = Evaluator.DefaultBatch)
    {
        int batches = Evaluator.BatchCount(data.Count, batchSize);
        int parts = Math.Min(Trainers, batches);
        var jobs = new List<Task<PartialEvaluation>>(parts);
        for (int p = 0, first = 0; p < parts; p++)
        {
            int count = batches / parts + (p < batches % parts ? 1 : 0);
            int from = first;
            jobs.Add(Submit(trainer => Evaluator.EvaluateBatches(trainer.ModuleWith(weights), data, from, count, batchSize)));
            first += count;
        }
        return Evaluator.Combine(data.Count, await Task.WhenAll(jobs).ConfigureAwait(false));
    }

    public Task<T> Submit<T>(Func<LocalTrainer, T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        queue.Add(new Job(trainer =>
        {
            try
            {
                completion.SetResult(work(trainer));
            }
            catch (Exception e)
            {
                completion.SetException(e);
            }
        }));
        return completion.Task;
    }

    void Work()
    {
        NativeTuning.SetIntraOpThreads(ThreadsPerTrainer);
        LocalTrainer? trainer = null;
        try
        {
            foreach (var job in queue.GetConsumingEnumerable())
            {
                trainer ??= new LocalTrainer(modelName);
                long start = Stopwatch.GetTimestamp();
                job.Run(trainer);
                Interlocked.Add(ref busyTicks, Stopwatch.GetElapsedTime(start).Ticks);
            }
        }
        finally
        {
            trainer?.Dispose();
        }
    }

    public void Dispose()
    {
        queue.CompleteAdding();
        foreach (var t in threads) t.Join();
        queue.Dispose();
    }

    sealed record Job(Action<LocalTrainer> Run);
}
