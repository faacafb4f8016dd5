using System.IO.Hashing;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;

namespace FedAvg.Actors.Transfer;

/// <summary>
/// Moves a weight vector to another actor: handed over as it is in one process, streamed as 64 KiB chunks through
/// an Akka.Streams stream ref between nodes. Between nodes no message is larger than a chunk, so the remote frame
/// stays at 128 KB and heartbeats never wait behind a 6.65 MB model (docs/architecture.md has the measurements).
/// </summary>
public static class WeightStream
{
    /// <summary>The wire format of weight vectors: little-endian float32, XxHash64 over those bytes.</summary>
    public const byte FormatVersion = 1;

    /// <summary>Half the remote frame (128,000 bytes): a chunk, its sequence number and envelope always fit.</summary>
    public const int ChunkBytes = 64 * 1024;

    /// <summary>XxHash64 of the little-endian float32 bytes (about 1 ms for 6.65 MB).</summary>
    public static ulong Checksum(ReadOnlySpan<float> weights) => XxHash64.HashToUInt64(MemoryMarshal.AsBytes(weights));

    public static WeightHeader Header(ulong layoutHash, int round, string clientId, int sampleCount, ReadOnlySpan<float> weights) =>
        new(FormatVersion, layoutHash, round, clientId, sampleCount, weights.Length, Checksum(weights));

    /// <summary>True when <paramref name="recipient"/> lives in this process, so the array itself can be handed over.</summary>
    public static bool IsLocal(IActorRef recipient) => recipient.Path.Address.HasLocalScope;

    /// <summary>
    /// The payload that carries <paramref name="weights"/> to <paramref name="recipient"/>. In process the recipient
    /// takes the array; across nodes it pulls copies of it in chunks, and <paramref name="released"/> runs once the
    /// stream is over (pulled, failed, or never pulled within the stream ref's subscription timeout), when nothing
    /// reads <paramref name="weights"/> any more.
    /// </summary>
    public static async Task<WeightsPayload> Offer(float[] weights, WeightHeader header, IActorRef recipient, IMaterializer materializer,
        Action? released = null)
    {
        if (IsLocal(recipient)) return new LocalWeights(header, weights);
        var source = Source.From(Chunks(weights))
            .WatchTermination((_, done) =>
            {
                if (released is not null) done.ContinueWith(_ => released(), TaskScheduler.Default);
                return Akka.NotUsed.Instance;
            });
        var chunks = await source.RunWith(StreamRefs.SourceRef<byte[]>(), materializer).ConfigureAwait(false);
        return new StreamedWeights(header, chunks);
    }

    /// <summary>The vector's bytes as chunks of <see cref="ChunkBytes"/>, copied lazily as the receiver pulls them.</summary>
    public static IEnumerable<byte[]> Chunks(float[] weights)
    {
        int total = weights.Length * sizeof(float);
        for (int offset = 0; offset < total; offset += ChunkBytes)
        {
            var chunk = new byte[Math.Min(ChunkBytes, total - offset)];
            MemoryMarshal.AsBytes(weights.AsSpan()).Slice(offset, chunk.Length).CopyTo(chunk);
            yield return chunk;
        }
    }

    /// <summary>
    /// The vector a payload carries, checked against its header: the whole length, no byte more, and the checksum.
    /// A streamed vector lands in <paramref name="allocate"/>'s array, which the caller owns. Failures are
    /// <see cref="WeightTransferException"/>s that say what was wrong.
    /// </summary>
    public static async Task<float[]> Receive(WeightsPayload payload, IMaterializer materializer, Func<int, float[]>? allocate = null)
    {
        var header = payload.Header;
        switch (payload)
        {
            case LocalWeights local:
                if (local.Weights.Length != header.Length)
                    throw new WeightTransferException($"header says {header.Length} weights, the vector has {local.Weights.Length}");
                return local.Weights;
            case StreamedWeights streamed:
                var weights = (allocate ?? (n => new float[n]))(header.Length);
                var bytes = new Memory<float>(weights);
                long expected = (long)header.Length * sizeof(float), received = 0;
                try
                {
                    await streamed.Chunks.Source.RunForeach(chunk =>
                    {
                        if (chunk.Length == 0 || chunk.Length > ChunkBytes)
                            throw new WeightTransferException($"a chunk of {chunk.Length} bytes (at most {ChunkBytes})");
                        if (received + chunk.Length > expected)
                            throw new WeightTransferException($"more than the {expected} bytes the header announced");
                        chunk.CopyTo(MemoryMarshal.AsBytes(bytes.Span).Slice((int)received));
                        received += chunk.Length;
                    }, materializer).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not WeightTransferException)
                {
                    WeightBuffers.Return(weights);
                    throw new WeightTransferException($"the stream failed after {received} of {expected} bytes: {e.GetBaseException().Message}", e);
                }
                catch
                {
                    WeightBuffers.Return(weights);
                    throw;
                }
                string? fault = received != expected ? $"the stream ended after {received} of {expected} bytes"
                    : Checksum(weights) != header.Checksum ? "checksum mismatch: the weights were damaged in transit"
                    : null;
                if (fault is not null)
                {
                    WeightBuffers.Return(weights);
                    throw new WeightTransferException(fault);
                }
                return weights;
            default:
                throw new WeightTransferException($"unknown payload {payload.GetType().Name}");
        }
    }
}

/// <summary>A weight vector could not be received intact; the message names what was wrong.</summary>
public sealed class WeightTransferException(string message, Exception? inner = null) : Exception(message, inner);
